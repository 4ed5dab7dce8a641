"""Collecting a job's output when its workload ends: the adapter hands over the tar of
/cortex/output/ (or the network uploaded it, and app/outputs/uploads.py reads it back),
spooled to a temporary file (never held in memory) up to the job's cap, packed
(app/outputs/packing.py) and streamed into the artifact store. The engine then writes the
`job_outputs` row, and an event saying what happened, in the transaction that ends the job.

Over `CORTEX_OUTPUT_MAX_BYTES` nothing is kept (a cut tar, or some files and not others,
would look complete and be wrong) and an `output_too_large` event says so.
"""

from __future__ import annotations

import logging
import tarfile
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from app.outputs import packing
from app.outputs.packing import Packed
from app.outputs.store import CHUNK_BYTES, ArtifactError, ArtifactStore
from providers.base import Provider
from providers.errors import HandleNotFound, ProviderError, Unavailable
from providers.types import Handle

logger = logging.getLogger(__name__)

# The runtime's tar holds headers and padding besides the files' bytes: 1.5 KiB at most per
# file (a header, a long-name header, padding), and the end-of-archive blocks.
ARCHIVE_OVERHEAD_PER_FILE = 1536
ARCHIVE_OVERHEAD = ARCHIVE_OVERHEAD_PER_FILE * (packing.MAX_FILES + 1) + 10240


def store_key(job_id: str) -> str:
    return f"outputs/{job_id}"


@dataclass(frozen=True)
class Outcome:
    """What collecting found: the stored output (or none), and the event to record."""

    packed: Packed | None = None
    event: str | None = None
    message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class _ArchiveTooLarge(Exception):
    pass


async def collect(
    provider: Provider, handle: Handle, job_id: str, store: ArtifactStore, max_bytes: int
) -> Outcome:
    """Collect and store the output of an ended workload. Raises Unavailable when the
    adapter cannot be reached now (the engine looks again, as it does for the last logs);
    everything else ends in an Outcome."""
    if not provider.collects_outputs:
        return Outcome()
    return await keep(partial(provider.output, handle), job_id, store, max_bytes)


def too_large(max_bytes: int, **seen: int) -> Outcome:
    return Outcome(
        event="output_too_large",
        message=(
            f"The files in /cortex/output/ hold more than the limit of {max_bytes} bytes per job"
            f" (or more than {packing.MAX_FILES} files): none were kept."
        ),
        data={"limitBytes": max_bytes, "limitFiles": packing.MAX_FILES, **seen},
    )


async def keep(
    fetch: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[bool]],
    job_id: str,
    store: ArtifactStore,
    max_bytes: int,
) -> Outcome:
    """Spool the tar of /cortex/output/ that `fetch` streams into the writer it is given
    (False: there is none), pack it and put it in the store: the Outcome to record."""
    limit = max_bytes + ARCHIVE_OVERHEAD
    with tempfile.TemporaryFile() as raw_spool, tempfile.TemporaryFile() as packed_spool:
        archive = anyio.wrap_file(raw_spool)
        received = 0

        async def write(chunk: bytes) -> None:
            nonlocal received
            received += len(chunk)
            if received > limit:
                raise _ArchiveTooLarge
            await archive.write(chunk)

        try:
            found = await fetch(write)
        except _ArchiveTooLarge:
            return too_large(max_bytes)
        except HandleNotFound:
            return Outcome()
        except Unavailable:
            raise
        except ProviderError as exc:
            return not_collected(job_id, f"the provider could not hand it over: {exc}")
        except ArtifactError as exc:
            return not_collected(job_id, f"the upload could not be read back: {exc}")
        if not found:
            return Outcome()
        raw_spool.seek(0)
        try:
            packed = await anyio.to_thread.run_sync(
                packing.pack, raw_spool, packed_spool, store_key(job_id), max_bytes
            )
        except packing.OutputTooLarge as exc:
            return too_large(max_bytes, seenBytes=exc.seen_bytes, seenFiles=exc.files)
        except (tarfile.TarError, OSError, EOFError) as exc:  # cut short, or unreadable
            return not_collected(job_id, f"its archive could not be read: {exc}")
        if packed is None:
            return Outcome()
        packed_spool.seek(0)
        try:
            await store.put(packed.store_key, _chunks(packed_spool), packed.size_bytes)
        except ArtifactError as exc:
            return not_collected(job_id, f"the artifact store refused it: {exc}")
    what = packed.file_name or f"{packed.file_count} files as a tar.gz"
    return Outcome(
        packed,
        event="output_collected",
        message=f"Collected the output: {what}, {packed.size_bytes} bytes.",
        data={
            "files": packed.file_count,
            "sizeBytes": packed.size_bytes,
            "fileName": packed.file_name,
            "sha256": packed.sha256,
        },
    )


def not_collected(job_id: str, why: str) -> Outcome:
    logger.warning("output of %s not collected: %s", job_id, why)
    return Outcome(event="output_not_collected", message=f"The output was not collected: {why}.")


async def _chunks(spool: Any) -> AsyncIterator[bytes]:
    file = anyio.wrap_file(spool)
    while chunk := await file.read(CHUNK_BYTES):
        yield chunk
