"""Removes old telemetry in the background: log lines, metric samples and events of jobs that
ended long enough ago, collected outputs (from the artifact store, then their rows), and
finished webhook deliveries (their attempts go with them).

Every gateway process runs a pruner; an advisory lock lets one at a time work. Rows go in
small batches, each its own transaction, so that a writer waits at most for one batch and
autovacuum can reclaim the space as pruning goes. A job's telemetry is pruned whole, once it
ended (a running job's log and event sequences are never touched), and the job records it
(`logs_pruned_at`, ...): its logs then answer 410 rather than an empty list. The job record
itself is kept, and so is its last event, whose seq the next event of the job would follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.outputs import repository as outputs_repository
from app.outputs.store import ArtifactError, ArtifactStore
from app.settings import Settings

logger = logging.getLogger(__name__)

# pg_advisory_lock key: "cortex retention" (any constant no other lock of ours uses).
LOCK_KEY = 0x636F727465787274
# Rows deleted per statement: small enough that a batch takes milliseconds.
BATCH_ROWS = 5_000
# Finished jobs looked up at a time.
JOBS_AT_ONCE = 100
RETRY_DELAY_MAX = 300.0
FIRST_PASS_SECONDS = 10.0
# A stopping process waits this long for the batch under way.
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class _JobTable:
    name: str
    table: str
    marker: str
    # A condition on the rows of one job (`:job_id`) that must stay.
    keep: str = "false"


_LOGS = _JobTable("logs", "log_lines", "logs_pruned_at")
_METRICS = _JobTable("metrics", "metric_samples", "metrics_pruned_at")
# The last event stays: a job's next event takes the seq after it, which followers resume by.
_EVENTS = _JobTable(
    "events",
    "job_events",
    "events_pruned_at",
    keep="seq = (SELECT max(seq) FROM job_events WHERE job_id = :job_id)",
)


@dataclass
class Pruned:
    """Rows removed by one pass, by kind; `jobs` counts jobs whose telemetry was pruned."""

    rows: dict[str, int] = field(default_factory=dict)
    jobs: int = 0


async def prune(
    db: AsyncEngine,
    settings: Settings,
    *,
    batch_rows: int = BATCH_ROWS,
    stop: asyncio.Event | None = None,
    artifacts: ArtifactStore | None = None,
) -> Pruned | None:
    """One pass over everything due, or until `stop` is set (checked between batches: a
    statement cancelled halfway could leave its connection unusable); None when another
    process holds the lock."""
    stop = stop or asyncio.Event()
    async with db.connect() as connection:
        # Each statement commits on its own: no batch waits for the whole pass.
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        locked = await connection.scalar(
            sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}
        )
        if not locked:
            return None
        try:
            pruned = Pruned()
            for kind, keep_for in (
                (_LOGS, settings.retention_logs),
                (_METRICS, settings.retention_metrics),
                (_EVENTS, settings.retention_events),
            ):
                if keep_for > 0:
                    await _prune_jobs(connection, kind, keep_for, batch_rows, pruned, stop)
            if settings.retention_outputs > 0 and artifacts is not None:
                pruned.rows["outputs"] = await _prune_outputs(
                    connection, artifacts, settings.retention_outputs, stop
                )
            if settings.retention_deliveries > 0:
                pruned.rows["deliveries"] = await _prune_deliveries(
                    connection, settings.retention_deliveries, batch_rows, stop
                )
            return pruned
        finally:
            # A connection lost midway took its session's lock with it.
            if not connection.invalidated:
                await connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY}
                )


async def _prune_jobs(
    connection: AsyncConnection,
    kind: _JobTable,
    keep_for: float,
    batch_rows: int,
    pruned: Pruned,
    stop: asyncio.Event,
) -> None:
    # Terminal jobs only, and none the engine still has to release (it may store a last line).
    due = sa.text(
        f"SELECT id FROM jobs WHERE {kind.marker} IS NULL"
        " AND ended_at < now() - make_interval(secs => :keep_for) AND NOT needs_release"
        " AND status IN ('completed', 'failed', 'cancelled')"
        " ORDER BY ended_at LIMIT :limit"
    )
    # ctid = ANY(ARRAY(...)) makes a TID scan; `ctid IN (SELECT ...)` can become a join that
    # reads the whole table.
    delete = sa.text(
        f"DELETE FROM {kind.table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {kind.table} WHERE job_id = :job_id AND NOT ({kind.keep})"
        " LIMIT :batch))"
    )
    mark = sa.text(f"UPDATE jobs SET {kind.marker} = now() WHERE id = :job_id")
    total = 0
    while not stop.is_set():
        job_ids = (
            await connection.scalars(due, {"keep_for": keep_for, "limit": JOBS_AT_ONCE})
        ).all()
        if not job_ids:
            break
        for job_id in job_ids:
            while True:
                if stop.is_set():
                    # This job is marked on the next pass, once its last rows are gone.
                    pruned.rows[kind.name] = total
                    return
                result = await connection.execute(delete, {"job_id": job_id, "batch": batch_rows})
                total += result.rowcount
                if result.rowcount < batch_rows:
                    break
            await connection.execute(mark, {"job_id": job_id})
            if kind is _LOGS:
                pruned.jobs += 1
    pruned.rows[kind.name] = total


async def _prune_deliveries(
    connection: AsyncConnection, keep_for: float, batch_rows: int, stop: asyncio.Event
) -> int:
    # Pending deliveries stay whatever their age: they are still to be sent.
    delete = sa.text(
        "DELETE FROM webhook_deliveries WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM webhook_deliveries"
        " WHERE created_at < now() - make_interval(secs => :keep_for) AND status <> 'pending'"
        " ORDER BY created_at LIMIT :batch))"
    )
    total = 0
    while not stop.is_set():
        result = await connection.execute(delete, {"keep_for": keep_for, "batch": batch_rows})
        total += result.rowcount
        if result.rowcount < batch_rows:
            break
    return total


async def _prune_outputs(
    connection: AsyncConnection, artifacts: ArtifactStore, keep_for: float, stop: asyncio.Event
) -> int:
    """Collected outputs older than `keep_for`: the stored object first, then its row (an
    object whose row is gone could never be found again; a row whose object is gone answers
    OUTPUT_NOT_FOUND, and goes on the next pass)."""
    total = 0
    while not stop.is_set():
        due = await outputs_repository.due_for_removal(connection, keep_for, JOBS_AT_ONCE)
        if not due:
            break
        for row in due:
            if stop.is_set():
                return total
            try:
                await artifacts.delete(row["store_key"])
            except ArtifactError as exc:
                logger.warning("retention: the artifact store is unreachable (%s)", exc)
                return total
            await outputs_repository.delete(connection, row["job_id"])
            total += 1
    return total


class Pruner:
    """Runs `prune` every `retention_interval` seconds in this process."""

    def __init__(
        self, db: AsyncEngine, settings: Settings, artifacts: ArtifactStore | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.artifacts = artifacts
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Let the batch under way finish rather than cancel it halfway."""
        self._stopping.set()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(STOP_SECONDS):
                await self._task
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _pause(self, seconds: float) -> bool:
        """Sleep; True when stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return self._stopping.is_set()

    async def _run(self) -> None:
        interval = self.settings.retention_interval
        # Not at once: a process that starts and stops at once (a CLI command, a test) prunes
        # nothing, and several starting together do not all try the lock.
        if await self._pause(min(interval, FIRST_PASS_SECONDS)):
            return
        delay = min(interval, 5.0)
        while True:
            try:
                pruned = await prune(
                    self.db, self.settings, stop=self._stopping, artifacts=self.artifacts
                )
            except Exception as exc:
                # A database outage, most likely: try again sooner than the next pass.
                logger.warning("retention pass failed (%s); retrying in %.0f s", exc, delay)
                if await self._pause(delay):
                    return
                delay = min(delay * 2, interval, RETRY_DELAY_MAX)
                continue
            delay = min(interval, 5.0)
            if pruned is not None and any(pruned.rows.values()):
                logger.info("retention removed %s", pruned.rows)
            if await self._pause(interval):
                return
