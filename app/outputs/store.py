"""The artifact store: where collected outputs are kept. One small interface, two backends:
a directory (the data directory's `artifacts/`, the default) and any S3-compatible bucket
(`CORTEX_ARTIFACTS_URL=s3://...`, app/outputs/s3.py)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

# One S3 PUT's limit, and so the most any object may hold in either backend.
MAX_OBJECT_BYTES = 5 * 1024**3
CHUNK_BYTES = 256 * 1024
# Keys are ours (job ids and fixed names): anything else is a bug, refused before it can
# name a path outside the store.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,3}$")


class ArtifactError(Exception):
    """The store could not do what was asked (unreachable, refused, or a size mismatch)."""


class ArtifactMissing(ArtifactError):
    """No object under this key."""


@dataclass(frozen=True)
class Download:
    """An object being read: its size and its bytes, in chunks. `aclose` ends the read and
    releases what it holds, whether or not the chunks were read (idempotent)."""

    size: int
    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]

    async def aclose(self) -> None:
        await self.close()


class ArtifactStore(Protocol):
    """Put a stream of `size` bytes, open one for reading, delete one. Keys look like
    `outputs/job_1a2b3c`; sizes above MAX_OBJECT_BYTES are refused."""

    description: str

    async def put(self, key: str, chunks: AsyncIterable[bytes], size: int) -> None: ...

    async def open(self, key: str) -> Download: ...

    async def delete(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"not an artifact key: {key!r}")
    return key


def check_size(size: int) -> int:
    if not 0 <= size <= MAX_OBJECT_BYTES:
        raise ArtifactError(f"an artifact holds at most {MAX_OBJECT_BYTES} bytes, not {size}")
    return size


class DirectoryStore:
    """Objects as files under `root`, written to a temporary name and renamed into place, so
    that a reader never sees half an object."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"directory {root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, chunks: AsyncIterable[bytes], size: int) -> None:
        check_size(size)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        written = 0
        try:
            async with await anyio.open_file(partial, "wb") as file:
                async for chunk in chunks:
                    written += len(chunk)
                    if written > size:
                        raise ArtifactError(f"more than the {size} bytes announced")
                    await file.write(chunk)
            if written != size:
                raise ArtifactError(f"{written} bytes instead of the {size} announced")
            os.replace(partial, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    async def open(self, key: str) -> Download:
        path = self._path(key)
        try:
            file = await anyio.open_file(path, "rb")
        except FileNotFoundError:
            raise ArtifactMissing(key) from None
        size = os.fstat(file.wrapped.fileno()).st_size

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await file.read(CHUNK_BYTES):
                    yield chunk
            finally:
                await file.aclose()

        return Download(size, chunks(), file.aclose)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    async def aclose(self) -> None:
        pass


def open_store(
    artifacts_url: str | None,
    data_dir: Path,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> ArtifactStore:
    """The store the settings name: a bucket for `s3://...`, else `data_dir/artifacts`."""
    if not artifacts_url:
        return DirectoryStore(data_dir / "artifacts")
    from app.outputs import s3

    url = s3.BucketUrl.parse(artifacts_url)
    if not access_key_id or not secret_access_key:
        raise ValueError(
            "CORTEX_ARTIFACTS_URL names a bucket: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return s3.S3Store(url, access_key_id, secret_access_key)
