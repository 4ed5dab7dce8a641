"""A job's progress and status message: set by the workload's control lines (see
app.jobs.control_lines) or by the gateway while the job waits, and announced as throttled
`progress` events and `job.progress` webhooks.

The job's columns always hold the latest values (GET /jobs/{id} shows them at once). Events
are throttled per job: at most one per `interval` seconds. A change inside the interval marks
the job `progress_unsent`, and a trailing event follows once the interval has passed
(`flush_due`, from the engine's next look at the job) or when the job ends (in
`jobs_service.transition`), so the last values are always delivered. Past
`MAX_PROGRESS_EVENTS` a job's columns still change but only its final state is announced.

Every function writes in the caller's transaction, under the job's row lock; none commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.jobs import control_lines, repository
from app.jobs import service as jobs_service
from app.jobs.record import JobRecord
from providers.types import LogLine, WorkloadState, WorkloadStatus

DEFAULT_INTERVAL = 5.0
# Progress events one job may have; later changes only show in the job (and its final event).
MAX_PROGRESS_EVENTS = 1000


def _due(job: JobRecord, interval: float, now: datetime) -> bool:
    if job.progress_events >= MAX_PROGRESS_EVENTS:
        return False
    last = job.progress_reported_at
    return last is None or (now - last).total_seconds() >= interval


async def apply(
    connection: AsyncConnection,
    job: JobRecord,
    columns: dict[str, Any],
    interval: float,
    *,
    announce: bool = True,
) -> JobRecord:
    """Set the job's progress columns (`progress`, `status_message`, `output_url`) and
    announce the change if the throttle allows (else mark it unsent). `announce=False`
    changes them silently (the wait's message cleared as the job starts: `started` says so).
    Returns the job as it now is."""
    changed = {name: value for name, value in columns.items() if getattr(job, name) != value}
    if not changed or job.status.is_terminal:
        return job
    if not announce:
        row = await repository.update_job(connection, job.id, {**changed, "progress_unsent": False})
    elif _due(job, interval, datetime.now(UTC)):
        row = await repository.update_job(connection, job.id, changed)
        row = await jobs_service.announce_progress(connection, row)
    else:
        row = await repository.update_job(connection, job.id, {**changed, "progress_unsent": True})
    return JobRecord.from_row(row)


async def take_control_lines(
    connection: AsyncConnection, job: JobRecord, lines: Iterable[LogLine], interval: float
) -> JobRecord:
    """Apply the control lines among a job's new log lines (stdout only), folded into one
    update: a batch of a thousand lines costs one write and at most one event. The lines
    themselves stay in the log as printed."""
    lines = tuple(lines)
    if lines and job.started_at is None and job.status_message and not _has_printed(job):
        # The workload prints, so it runs: the gateway's waiting message ends before the
        # workload's own messages (these lines may be stored before the job is seen running).
        job = await apply(connection, job, {"status_message": None}, interval, announce=False)
    update = control_lines.parse_control_lines(
        line.line for line in lines if line.stream == "stdout"
    )
    if update is None:
        return job
    return await apply(connection, job, update.columns, interval)


def _waiting(status: WorkloadStatus) -> str | None:
    """The adapter's waiting sentence, held to a status message's length."""
    waiting = status.waiting
    return waiting[: control_lines.MAX_MESSAGE_CHARS] if waiting else None


async def note_waiting(
    connection: AsyncConnection, job: JobRecord, status: WorkloadStatus, interval: float
) -> JobRecord:
    """The gateway's status message from what the network says while the job waits
    (`status.waiting`: "waiting for bids: 3 so far, ..."), kept current until the workload
    runs; then cleared, once, for the workload's own messages."""
    if job.started_at is not None or _has_printed(job):
        return job
    if status.state in (WorkloadState.PENDING, WorkloadState.STARTING):
        return await apply(connection, job, {"status_message": _waiting(status)}, interval)
    if status.state in (WorkloadState.RUNNING, WorkloadState.EXITED) and job.status_message:
        return await apply(connection, job, {"status_message": None}, interval, announce=False)
    return job


def flush_is_due(job: JobRecord, interval: float) -> bool:
    """Whether the job has a throttled change whose trailing event may go out now."""
    return job.progress_unsent and _due(job, interval, datetime.now(UTC))


async def flush_due(connection: AsyncConnection, job_id: str, interval: float) -> None:
    """Announce the job's throttled change if its interval has passed, from the job's row as
    it is now (re-read: a step may have announced it already)."""
    row = await repository.get_job_by_id(connection, job_id, for_update=False)
    assert row is not None, "the caller holds the job's row lock"
    job = JobRecord.from_row(row)
    if flush_is_due(job, interval) and not job.status.is_terminal:
        await jobs_service.announce_progress(connection, row)


def waiting_changed(job: JobRecord, status: WorkloadStatus) -> bool:
    """Whether `note_waiting` has something to write for this status."""
    if job.started_at is not None or _has_printed(job):
        return False
    if status.state in (WorkloadState.PENDING, WorkloadState.STARTING):
        return _waiting(status) != job.status_message
    return status.state in (WorkloadState.RUNNING, WorkloadState.EXITED) and bool(
        job.status_message
    )


def _has_printed(job: JobRecord) -> bool:
    """Whether the workload's output has reached the gateway: its waiting is over, and any
    status message from then on is the workload's own."""
    return job.log_bytes_stored > 0 or job.log_lines_dropped > 0
