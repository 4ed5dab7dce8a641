"""The steps every engine action is made of: the context it runs in, one recorded step (a
transaction under the job's row lock, only while this engine holds the job), and the outcomes
both the plain actions (actions.py) and `auto` placement (auto.py) record.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import database
from app.admission.providers import ProviderSet
from app.admission.workload import workload_spec
from app.engine import repository
from app.jobs import progress
from app.jobs import repository as jobs_repository
from app.jobs import service as jobs_service
from app.jobs.lifecycle import JobStatus
from app.jobs.record import JobRecord
from app.outputs import collect
from app.outputs import service as outputs_service
from app.outputs.store import ArtifactStore
from app.outputs.uploads import UploadLinks
from providers import log_limits
from providers.base import Provider
from providers.errors import HandleNotFound
from providers.types import FailureReason, Handle, LogBatch, LogLine, WorkloadSpec

T = TypeVar("T")


class LeaseLost(Exception):
    """Another engine holds the job now; this one must stop driving it."""


@dataclass
class Context:
    db: AsyncEngine
    providers: ProviderSet
    owner: str
    metrics_interval: float
    log_max_bytes: int
    # Seconds a provider may stay unavailable to a pending job before the job fails.
    submit_timeout: float = 900.0
    # At most one `progress` event per job per this many seconds (app.jobs.progress).
    progress_interval: float = progress.DEFAULT_INTERVAL
    # Where ended jobs' outputs go (None: they are not collected), and how much one may hold.
    artifacts: ArtifactStore | None = None
    output_max_bytes: int = 100 * 1024 * 1024
    # Upload links for networks that send outputs themselves (None: no public URL to give).
    upload_links: UploadLinks | None = None

    def spec_of(self, row: JobRecord) -> WorkloadSpec:
        """The job as its provider sees it, saying whether its output will be asked for by
        upload (an adapter may need to prepare for that at start)."""
        spec = workload_spec(jobs_service.spec_document(row))
        wanted = self.upload_links is not None and self.artifacts is not None
        return dataclasses.replace(spec, upload_output=wanted)


async def record(
    ctx: Context, job_id: str, step: Callable[[AsyncConnection, JobRecord], Awaitable[T]]
) -> T:
    """Run `step` on the job, re-read under its row lock, in one transaction; LeaseLost when
    this engine no longer holds the job (a lapsed lease must never write twice)."""
    async with database.transaction(ctx.db) as connection:
        row = await repository.lock_owned(connection, ctx.owner, job_id)
        if row is None:
            raise LeaseLost(job_id)
        return await step(connection, JobRecord.from_row(row))


class Progress(Enum):
    ENDED = "ended"
    CHANGED = "changed"
    QUIET = "quiet"  # nothing new: the engine may look less often
    UNAVAILABLE = "unavailable"  # the provider did not answer: look again after a backoff


def _cost(row: JobRecord, until: datetime) -> float:
    started = row.started_at
    if started is None:
        return 0.0
    hours = max((until - started).total_seconds(), 0.0) / 3600
    return round(float(row.usd_per_hour) * hours, 6)


def final_cost(row: JobRecord, ended_at: datetime) -> dict[str, Any]:
    """The end time and the cost up to it, from one clock reading: cost = rate x (endedAt -
    startedAt), exactly."""
    return {"ended_at": ended_at, "cost_current": _cost(row, ended_at)}


async def store_logs(
    connection: AsyncConnection,
    row: JobRecord,
    batch: LogBatch | None,
    max_bytes: int,
    *,
    progress_interval: float = progress.DEFAULT_INTERVAL,
) -> dict[str, Any]:
    """Store the batch's lines until the job's stored log text reaches `max_bytes`; the rest
    are only counted. Returns the job's changed columns (cursor, sequence, counters), to be
    written in the same transaction as the lines."""
    if batch is None:
        return {}
    # Control lines (`::cortex {...}`) set the job's progress: every network's lines pass
    # here. They are stored as log lines too, like any other (even past the log's cap).
    await progress.take_control_lines(connection, row, batch.lines, progress_interval)
    changes: dict[str, Any] = {"log_cursor": batch.cursor}
    if not batch.lines and not batch.dropped_lines:
        return changes
    stored_bytes, kept = row.log_bytes_stored, []
    dropped_lines, dropped_bytes = 0, 0
    # Every line a provider reports passes here once, in order, in the transaction that
    # stores it (or counts it, past the cap): the one place for per-line work.
    for line in batch.lines:
        clipped = LogLine(line.timestamp, log_limits.clip(line.line), line.stream)
        size = len(clipped.line.encode())
        if dropped_lines == 0 and row.log_lines_dropped == 0 and stored_bytes + size <= max_bytes:
            kept.append(clipped)
            stored_bytes += size
        else:
            # Once one line is dropped, later ones are too: the stored log stays a prefix.
            dropped_lines += 1
            dropped_bytes += len(line.line.encode())
    dropped_lines += batch.dropped_lines
    dropped_bytes += batch.dropped_bytes
    if kept:
        await repository.append_logs(connection, row.id, row.log_seq, kept)
        changes.update(log_seq=row.log_seq + len(kept), log_bytes_stored=stored_bytes)
    if dropped_lines:
        changes.update(
            log_lines_dropped=row.log_lines_dropped + dropped_lines,
            log_bytes_dropped=row.log_bytes_dropped + dropped_bytes,
        )
    return changes


async def store_batch(ctx: Context, job_id: str, read_from: str | None, batch: LogBatch) -> None:
    """Store one batch read from the cursor `read_from` in its own transaction, the job's
    cursor advanced with its lines (exactly once: a batch read from a cursor the job no
    longer has is not stored)."""

    async def step(connection: AsyncConnection, row: JobRecord) -> None:
        if row.status.is_terminal or row.log_cursor != read_from:
            return
        changes = await store_logs(
            connection, row, batch, ctx.log_max_bytes, progress_interval=ctx.progress_interval
        )
        await jobs_repository.update_job(connection, row.id, changes)

    await record(ctx, job_id, step)


async def note_truncation(
    connection: AsyncConnection, row: JobRecord, changes: dict[str, Any]
) -> None:
    """The one `logs_truncated` event of a job whose log passed the cap, written as it ends
    (when the totals are known)."""
    lines = changes.get("log_lines_dropped", row.log_lines_dropped)
    if not lines:
        return
    size = changes.get("log_bytes_dropped", row.log_bytes_dropped)
    stored = changes.get("log_bytes_stored", row.log_bytes_stored)
    await jobs_repository.append_event(
        connection,
        row.id,
        "logs_truncated",
        message=(
            f"The log passed the limit of stored bytes per job: {lines} lines ({size} bytes)"
            f" were counted but not stored after {stored} bytes."
        ),
        data={"droppedLines": lines, "droppedBytes": size, "storedBytes": stored},
    )


async def fail(
    ctx: Context,
    job_id: str,
    reason: FailureReason,
    message: str,
    *,
    exit_code: int | None = None,
    batch: LogBatch | None = None,
    output: collect.Outcome | None = None,
) -> None:
    async def step(connection: AsyncConnection, row: JobRecord) -> None:
        if row.status.is_terminal:
            return
        changes = await store_logs(
            connection, row, batch, ctx.log_max_bytes, progress_interval=ctx.progress_interval
        )
        await note_truncation(connection, row, changes)
        await outputs_service.record(connection, row.id, output)
        changes["results"] = {
            **(row.results or {}),
            "exitCode": exit_code,
            "reason": reason.value,
            "message": message,
        }
        changes["endpoints"] = []
        changes.update(final_cost(row, datetime.now(UTC)))
        await jobs_service.transition(
            connection, row, JobStatus.FAILED, message=message, changes=changes
        )

    await record(ctx, job_id, step)


# The job's price columns from a quote (one place: app.jobs.service.price_changes).
price_changes = jobs_service.price_changes


async def stop_quietly(provider: Provider, handle: Handle) -> None:
    with contextlib.suppress(HandleNotFound):
        await provider.cancel(handle)
