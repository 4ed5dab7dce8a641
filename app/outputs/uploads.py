"""Outputs a network sends by itself (Golem's ExeScript `transfer`, providers/golem/outputs.py):
the signed, single-job, expiring URL the network PUTs the tar of /cortex/output/ to, what the
gateway does with what arrives, and the engine's side of it.

Any gateway process may receive the upload, and another one's engine drives the job: so the
upload is staged in the artifact store (`uploads/<job id>`), and the engine, once the network
says it sent it, reads it back and keeps it exactly as a local runtime's archive (collect.py:
same cap, same packing, same events, recorded with the job's end), then removes the staged
copy. An upload over the cap is refused (413) and leaves a note (`uploads/<job id>.too-large`)
so that the job says `output_too_large` rather than the network's bare error.

Why not a presigned S3 PUT when the store is a bucket: yagna streams the body without a
Content-Length (chunked), which S3 refuses (501 NotImplemented, header Transfer-Encoding); a
presigned PUT cannot cap the size; and the bucket would hold the raw tar, not the packed output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database, openapi
from app.outputs import collect, links
from app.outputs.collect import Outcome
from app.outputs.store import CHUNK_BYTES, ArtifactError, ArtifactMissing, ArtifactStore
from providers.base import Provider
from providers.errors import HandleNotFound, ProviderError, Unavailable
from providers.types import Handle

logger = logging.getLogger(__name__)

# How long an upload link is valid: the network starts the upload at once, but a provider may
# retry it after a failure (yagna: twice, after 2 s and 4 s) and a slow one takes a while.
LINK_SECONDS = 900.0


def staged_key(job_id: str) -> str:
    return f"uploads/{job_id}"


def refusal_key(job_id: str) -> str:
    return f"uploads/{job_id}.too-large"


def cap(max_bytes: int) -> int:
    """The most an upload may hold: the output limit plus the tar's own headers."""
    return max_bytes + collect.ARCHIVE_OVERHEAD


@dataclass
class UploadLinks:
    """Makes the upload URL for a job: under the gateway's public URL, signed with the key
    every process shares (loaded from the database on first use)."""

    db: AsyncEngine
    public_url: str
    ttl_seconds: float = LINK_SECONDS
    _key: bytes | None = field(default=None, repr=False)

    async def url(self, job_id: str) -> str:
        if self._key is None:
            async with database.transaction(self.db) as connection:
                self._key = await links.load_key(connection)
        query = links.signed_query(self._key, job_id, self.ttl_seconds, purpose=links.UPLOAD)
        base = self.public_url.rstrip("/") + openapi.PREFIX
        return f"{base}/jobs/{job_id}/output-upload?{query}"


# -- the engine's side -----------------------------------------------------------------------


async def collect_uploaded(
    provider: Provider,
    handle: Handle,
    job_id: str,
    store: ArtifactStore,
    max_bytes: int,
    upload_links: UploadLinks | None,
) -> Outcome:
    """Have the network upload the ended workload's output, then keep what arrived as
    collect.collect keeps a runtime's archive. Without a public URL nothing is attempted.
    Raises Unavailable when the network cannot be asked now (the engine looks again)."""
    if upload_links is None or not provider.uploads_outputs:
        return Outcome()
    try:
        return await _ask_and_keep(provider, handle, job_id, store, max_bytes, upload_links)
    except ArtifactError as exc:
        return collect.not_collected(job_id, f"the artifact store is unreachable: {exc}")
    finally:
        for key in (staged_key(job_id), refusal_key(job_id)):
            with contextlib.suppress(ArtifactError):
                await store.delete(key)


async def _ask_and_keep(
    provider: Provider,
    handle: Handle,
    job_id: str,
    store: ArtifactStore,
    max_bytes: int,
    upload_links: UploadLinks,
) -> Outcome:
    failure: str | None = None
    if not await exists(store, staged_key(job_id)):  # else: sent before a restart
        try:
            if not await provider.upload_output(handle, await upload_links.url(job_id)):
                return Outcome()
        except HandleNotFound:
            return Outcome()
        except ProviderError as exc:
            if isinstance(exc, Unavailable):
                raise
            failure = str(exc)
    refusal = await _read_refusal(store, job_id)
    if refusal is not None:
        return collect.too_large(max_bytes, **refusal)
    if not await exists(store, staged_key(job_id)):
        if failure is None:
            return Outcome()
        return collect.not_collected(job_id, f"the provider could not send it: {failure}")
    return await collect.keep(_read_staged(store, job_id), job_id, store, max_bytes)


async def exists(store: ArtifactStore, key: str) -> bool:
    try:
        download = await store.open(key)
    except ArtifactMissing:
        return False
    await download.aclose()
    return True


def _read_staged(
    store: ArtifactStore, job_id: str
) -> Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[bool]]:
    async def fetch(write: Callable[[bytes], Awaitable[None]]) -> bool:
        try:
            download = await store.open(staged_key(job_id))
        except ArtifactMissing:
            return False
        try:
            async for chunk in download.chunks:
                await write(chunk)
        finally:
            await download.aclose()
        return True

    return fetch


async def _read_refusal(store: ArtifactStore, job_id: str) -> dict[str, int] | None:
    try:
        download = await store.open(refusal_key(job_id))
    except ArtifactMissing:
        return None
    try:
        body = b"".join([chunk async for chunk in download.chunks])
    finally:
        await download.aclose()
    with contextlib.suppress(ValueError, AttributeError):
        return {"seenBytes": int(json.loads(body)["seenBytes"])}
    return {}


# -- the receiving side ----------------------------------------------------------------------


class UploadTooLarge(Exception):
    def __init__(self, seen_bytes: int) -> None:
        super().__init__(seen_bytes)
        self.seen_bytes = seen_bytes


async def receive(
    store: ArtifactStore,
    job_id: str,
    chunks: AsyncIterator[bytes],
    declared_bytes: int | None,
    max_bytes: int,
) -> int:
    """Stage an upload in the store: its size. Raises UploadTooLarge past the cap (before
    reading a byte when its Content-Length says so), leaving the note the engine reads."""
    limit = cap(max_bytes)
    if declared_bytes is not None and declared_bytes > limit:
        await _refuse(store, job_id, declared_bytes)
    with tempfile.TemporaryFile() as spool:
        file = anyio.wrap_file(spool)
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                await _refuse(store, job_id, size)
            await file.write(chunk)
        spool.seek(0)
        await store.put(staged_key(job_id), _spooled(spool), size)
    return size


async def _refuse(store: ArtifactStore, job_id: str, seen_bytes: int) -> None:
    note = json.dumps({"seenBytes": seen_bytes}).encode()
    try:
        await store.put(refusal_key(job_id), _once(note), len(note))
    except ArtifactError:
        logger.warning("could not note the refused upload of %s", job_id)
    raise UploadTooLarge(seen_bytes)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _spooled(spool: Any) -> AsyncIterator[bytes]:
    file = anyio.wrap_file(spool)
    while chunk := await file.read(CHUNK_BYTES):
        yield chunk
