"""From the tar of /cortex/output/ a runtime hands over to what the store keeps: the file
itself when the workload left exactly one (at the top of the directory), else a tar.gz of
every regular file and directory in it, named relative to it. Synchronous: run in a thread.

Only regular files and directories are kept (links, devices and the like are skipped), and
names that would leave the directory (`..`, absolute) are dropped.
"""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
import shutil
import tarfile
from dataclasses import dataclass
from typing import IO, cast

# At most this many files in one output: each costs a tar header when packed and listed.
MAX_FILES = 10_000
COPY_CHUNK = 256 * 1024
TAR_GZ_TYPE = "application/gzip"
# The runtime's archive names its entries after the directory: `output/...`; podman names
# those of a directory that is a volume's mount point after the volume's root instead (the
# directory itself "", its files "/a.txt"), which the archive's first entry tells apart.
TOP = "output"


class OutputTooLarge(Exception):
    def __init__(self, message: str, seen_bytes: int, files: int) -> None:
        super().__init__(message)
        self.seen_bytes = seen_bytes
        self.files = files


@dataclass(frozen=True)
class Packed:
    """What the store holds for a job (the `job_outputs` row but the job id)."""

    store_key: str
    size_bytes: int
    file_count: int
    file_name: str | None  # None: a tar.gz
    content_type: str
    sha256: str


def _relative(name: str, top: str) -> str | None:
    """`output/a/b.txt` -> `a/b.txt` (with `top` "output"; with "", `/a/b.txt` -> `a/b.txt`);
    None for the directory itself, or a name outside it."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    if top:
        if len(parts) < 2 or parts[0] != top or name.startswith("/"):
            return None
        parts = parts[1:]
    return posixpath.join(*parts) if parts else None


def pack(archive: IO[bytes], packed: IO[bytes], store_key: str, max_bytes: int) -> Packed | None:
    """Read the runtime's tar of the output directory from `archive` (positioned at its start)
    into `packed`; None when it holds no file. Raises OutputTooLarge past `max_bytes` of file
    content or MAX_FILES files."""
    total, files, dirs = 0, [], []
    names: dict[str, str] = {}
    top = TOP
    with tarfile.open(fileobj=archive, mode="r:") as tar:
        for index, member in enumerate(tar):
            if index == 0 and not member.name.strip("/."):
                top = ""
            name = _relative(member.name, top)
            if name is None:
                continue
            names[member.name] = name
            if member.isdir():
                dirs.append(member)
            elif member.isreg():
                total += member.size
                files.append(member)
                if total > max_bytes or len(files) > MAX_FILES:
                    raise OutputTooLarge(
                        f"more than {max_bytes} bytes"
                        if total > max_bytes
                        else f"more than {MAX_FILES} files",
                        total,
                        len(files),
                    )
        if not files:
            return None
        digest = hashlib.sha256()
        out = _Hashing(packed, digest)
        single = len(files) == 1 and "/" not in names[files[0].name]
        if single:
            source = tar.extractfile(files[0])
            assert source is not None, "a regular member has content"
            shutil.copyfileobj(source, out, COPY_CHUNK)
            name = names[files[0].name]
            content_type = _content_type(name)
        else:
            name, content_type = None, TAR_GZ_TYPE
            with tarfile.open(
                fileobj=cast(IO[bytes], out), mode="w:gz", format=tarfile.PAX_FORMAT
            ) as gz:
                for member in sorted(dirs + files, key=lambda m: m.name):
                    info = tarfile.TarInfo(names[member.name])
                    info.mtime = member.mtime
                    if member.isdir():
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        gz.addfile(info)
                    else:
                        info.size, info.mode = member.size, 0o644 | (member.mode & 0o111)
                        gz.addfile(info, tar.extractfile(member))
    return Packed(
        store_key=store_key,
        size_bytes=out.written,
        file_count=len(files),
        file_name=name,
        content_type=content_type,
        sha256=digest.hexdigest(),
    )


def _content_type(name: str) -> str:
    """By the file's name; a compressed one (`x.tar.gz`) is sent as what it is on disk."""
    kind, encoding = mimetypes.guess_type(name)
    if encoding is not None:
        return _ENCODED.get(encoding, "application/octet-stream")
    return kind or "application/octet-stream"


_ENCODED = {"gzip": TAR_GZ_TYPE, "bzip2": "application/x-bzip2", "xz": "application/x-xz"}


class _Hashing:
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, target: IO[bytes], digest: hashlib._Hash) -> None:
        self.target, self.digest, self.written = target, digest, 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.written += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()
