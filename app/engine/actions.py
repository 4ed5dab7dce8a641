"""What the engine does for a job in each state: ask the provider, then record the outcome
(state change, events, logs, metrics, cost) in one transaction.

Provider calls happen outside transactions; each record step re-reads the job under its row
lock and only if this engine still holds it, so a lapsed lease can never write twice.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.accounts import budgets
from app.engine import auto, repository, retry, steps
from app.jobs import progress
from app.jobs import repository as jobs_repository
from app.jobs import service as jobs_service
from app.jobs.lifecycle import JobStatus
from app.jobs.record import JobRecord
from app.observability import tracing
from app.outputs import collect, uploads
from app.outputs import service as outputs_service
from providers.base import Provider
from providers.errors import (
    HandleNotFound,
    ImagePullFailed,
    ProviderError,
    Rejected,
    Unavailable,
)
from providers.types import (
    FailureReason,
    Handle,
    LogBatch,
    MetricSample,
    WorkloadState,
    WorkloadStatus,
)

logger = logging.getLogger(__name__)


async def _read_logs(
    provider: Provider, handle: Handle, cursor: str | None, job_id: str
) -> LogBatch | None:
    try:
        return await provider.logs(handle, cursor)
    except ProviderError as exc:
        # By the job's id: a handle may hold what the network was sent (env values too).
        logger.info("reading logs of %s failed: %s", job_id, exc)
        return None


# Reads of an ended workload's log before its job is closed; a read is capped by the adapter,
# so a workload that printed a lot since the last look takes several.
MAX_FINAL_READS = 200


async def drain_logs(
    ctx: steps.Context,
    row: JobRecord,
    provider: Provider,
    handle: Handle,
    *,
    first: LogBatch | None = None,
) -> None:
    """Store everything an ended (or stopping) workload printed after the job's cursor,
    before its job is closed (and its workload released, taking the log with it): one
    transaction per read, each advancing the cursor with its lines, so that the intake goes
    at the runtime's pace and a restart resumes at the last stored batch. `first`: a batch
    already read from the job's cursor. Raises Unavailable when the log cannot be read now:
    the caller tries again later, from the stored cursor."""
    cursor = row.log_cursor
    batch = first
    for _ in range(MAX_FINAL_READS):
        if batch is None:
            try:
                batch = await provider.logs(handle, cursor)
            except HandleNotFound:
                return
        if batch.lines or batch.cursor != cursor:
            await steps.store_batch(ctx, row.id, cursor, batch)
            cursor = batch.cursor
        if not batch.lines or batch.complete:
            return
        batch = None


async def _collect_output(
    ctx: steps.Context, provider: Provider, handle: Handle, row: JobRecord
) -> collect.Outcome | None:
    """The ended workload's output, stored before the job is closed and its workload
    released (taking its files with it). Raises Unavailable as drain_logs does."""
    if ctx.artifacts is None:
        return None
    if provider.uploads_outputs:
        return await uploads.collect_uploaded(
            provider, handle, row.id, ctx.artifacts, ctx.output_max_bytes, ctx.upload_links
        )
    return await collect.collect(provider, handle, row.id, ctx.artifacts, ctx.output_max_bytes)


@tracing.engine_step("start")
async def start(ctx: steps.Context, row: JobRecord, provider: Provider) -> float | None:
    """Submit a pending job. Returns seconds to wait before trying again, or None."""
    spec = ctx.spec_of(row)
    refusals = provider.check(spec)
    if refusals:
        message = "; ".join(f"{r.field}: {r.message}" for r in refusals)
        await steps.fail(ctx, row.id, FailureReason.REJECTED, message)
        return None
    try:
        quote = await provider.quote(spec)
        handle = await provider.submit(spec)
    except Unavailable as exc:
        return await retry.submit_failed(ctx, row, provider.name, exc)
    except ImagePullFailed as exc:
        await steps.fail(ctx, row.id, FailureReason.IMAGE_PULL, str(exc))
        return None
    except Rejected as exc:
        await steps.fail(ctx, row.id, FailureReason.REJECTED, str(exc))
        return None

    async def step(connection: AsyncConnection, current: JobRecord) -> bool:
        if current.status != JobStatus.PENDING:
            # Cancelled while it was being submitted: what started must not keep running.
            await jobs_repository.update_job(
                connection, current.id, {"handle": handle, "needs_release": True}
            )
            return False
        await jobs_service.transition(
            connection,
            current,
            JobStatus.SCHEDULED,
            message=f"Submitted to {provider.name}.",
            changes={
                "handle": handle,
                "needs_release": True,
                **retry.SUBMITTED,
                **steps.price_changes(quote, current.duration),
            },
        )
        return True

    if not await steps.record(ctx, row.id, step):
        await steps.stop_quietly(provider, handle)
    return None


@tracing.engine_step("follow")
async def follow(
    ctx: steps.Context, row: JobRecord, provider: Provider, *, sample: bool
) -> steps.Progress:
    """Follow a scheduled or running job one step."""
    handle = row.handle
    assert handle is not None, "a scheduled or running job has its workload's handle"
    try:
        status = await provider.status(handle)
    except HandleNotFound as exc:
        await steps.fail(ctx, row.id, FailureReason.LOST, str(exc))
        return steps.Progress.ENDED
    except Unavailable as exc:
        logger.warning("status of %s unavailable: %s", row.id, exc)
        return steps.Progress.UNAVAILABLE
    if auto.fails_over(row, status):
        return await auto.fail_over(ctx, row, provider, handle, status)
    handle = status.handle or handle
    batch: LogBatch | None = None
    output = None
    if status.state in (WorkloadState.EXITED, WorkloadState.FAILED):
        try:
            await drain_logs(ctx, row, provider, handle)
            output = await _collect_output(ctx, provider, handle, row)
        except Unavailable as exc:
            logger.warning("final logs or output of %s unavailable, will retry: %s", row.id, exc)
            return steps.Progress.QUIET
    else:
        batch = await _read_logs(provider, handle, row.log_cursor, row.id)
    metric = None
    if sample and status.state is WorkloadState.RUNNING:
        try:
            metric = await provider.metrics(handle)
        except ProviderError:
            metric = None

    started_at = row.started_at or status.started_at
    now = datetime.now(UTC)
    if (
        status.state in (WorkloadState.RUNNING, WorkloadState.STARTING)
        and started_at is not None
        and (now - started_at).total_seconds() > row.duration
    ):
        try:
            await steps.stop_quietly(provider, handle)
            await drain_logs(ctx, row, provider, handle, first=batch)
            output = await _collect_output(ctx, provider, handle, row)
        except Unavailable as exc:
            logger.warning("stopping %s past its duration failed, will retry: %s", row.id, exc)
            return steps.Progress.QUIET
        await steps.fail(
            ctx,
            row.id,
            FailureReason.TIMEOUT,
            f"Ran past its duration of {row.duration} s and was stopped.",
            output=output,
        )
        return steps.Progress.ENDED
    quiet = _nothing_new(row, status, handle, batch) and not _progress_due(ctx, row, status)
    if quiet and metric is None:
        return steps.Progress.QUIET

    async def step(connection: AsyncConnection, current: JobRecord) -> bool:
        return await _record_status(ctx, connection, current, status, handle, batch, metric, output)

    ended = await steps.record(ctx, row.id, step)
    if ended:
        return steps.Progress.ENDED
    # A metric sample alone is not a change: the workload is as quiet as before.
    return steps.Progress.QUIET if quiet else steps.Progress.CHANGED


def _endpoints(status: WorkloadStatus) -> list[dict[str, Any]]:
    return [{"port": e.port, "url": e.url} for e in status.endpoints]


def _nothing_new(
    row: JobRecord, status: WorkloadStatus, handle: Handle, batch: LogBatch | None
) -> bool:
    """True when the workload shows nothing new: the common case of a quiet, running
    workload, which then costs no transaction at all (unless a metric is due)."""
    if batch is not None and (batch.lines or batch.cursor != row.log_cursor):
        return False
    if status.notes or status.price is not None or handle != row.handle:
        return False
    if status.state is WorkloadState.RUNNING:
        return row.status == JobStatus.RUNNING and row.endpoints == _endpoints(status)
    return status.state in (WorkloadState.PENDING, WorkloadState.STARTING, WorkloadState.UNKNOWN)


def _progress_due(ctx: steps.Context, row: JobRecord, status: WorkloadStatus) -> bool:
    """The job's status message or a throttled progress event has something to write."""
    return progress.waiting_changed(row, status) or progress.flush_is_due(
        row, ctx.progress_interval
    )


def _ending(
    row: JobRecord, status: WorkloadStatus, reason: FailureReason | None, now: datetime
) -> dict[str, Any]:
    """The job's columns once its workload has ended."""
    results = {
        **(row.results or {}),
        "exitCode": status.exit_code,
        "reason": reason.value if reason is not None else None,
        "message": status.message,
    }
    return {"results": results, "endpoints": [], **steps.final_cost(row, now)}


async def _record_status(
    ctx: steps.Context,
    connection: AsyncConnection,
    row: JobRecord,
    status: WorkloadStatus,
    handle: Handle,
    batch: LogBatch | None,
    metric: MetricSample | None,
    output: collect.Outcome | None = None,
) -> bool:
    current = row.status
    if current.is_terminal:
        return True
    interval = ctx.progress_interval
    row = await progress.note_waiting(connection, row, status, interval)
    changes = await steps.store_logs(
        connection, row, batch, ctx.log_max_bytes, progress_interval=interval
    )
    if progress.flush_is_due(row, interval):
        await progress.flush_due(connection, row.id, interval)
    if metric is not None:
        await repository.add_metric(connection, row.id, metric)
    if handle != row.handle:
        changes["handle"] = handle
    if status.price is not None:
        changes.update(steps.price_changes(status.price, row.duration))
    for note in status.notes:
        await jobs_repository.append_event(connection, row.id, "provider", message=note)
    now = datetime.now(UTC)

    if status.state in (WorkloadState.RUNNING, WorkloadState.EXITED) and row.started_at is None:
        started = status.started_at or now
        if current is JobStatus.SCHEDULED:
            row = await jobs_service.transition(
                connection, row, JobStatus.RUNNING, changes={"started_at": started}
            )
            current = JobStatus.RUNNING
        else:
            row = JobRecord.from_row(
                await jobs_repository.update_job(connection, row.id, {"started_at": started})
            )

    if status.state is WorkloadState.RUNNING:
        if row.endpoints != _endpoints(status):
            changes["endpoints"] = _endpoints(status)
        if changes:
            await jobs_repository.update_job(connection, row.id, changes)
        return False
    if status.state is WorkloadState.EXITED:
        succeeded = status.exit_code == 0 and status.reason is None
        reason = None if succeeded else (status.reason or FailureReason.EXIT_CODE)
        changes.update(_ending(row, status, reason, now))
        await steps.note_truncation(connection, row, changes)
        await outputs_service.record(connection, row.id, output)
        target = JobStatus.COMPLETED if succeeded else JobStatus.FAILED
        message = f"Exited with code {status.exit_code}." if succeeded else status.message
        await jobs_service.transition(connection, row, target, message=message, changes=changes)
        return True
    if status.state is WorkloadState.FAILED:
        changes.update(_ending(row, status, status.reason or FailureReason.PROVIDER_ERROR, now))
        await steps.note_truncation(connection, row, changes)
        await outputs_service.record(connection, row.id, output)
        await jobs_service.transition(
            connection, row, JobStatus.FAILED, message=status.message, changes=changes
        )
        return True
    if changes:
        await jobs_repository.update_job(connection, row.id, changes)
    return False


@tracing.engine_step("stop")
async def stop(ctx: steps.Context, row: JobRecord, provider: Provider) -> bool:
    """Carry out a cancel request. Returns whether the job is now cancelled."""
    handle: Handle | None = row.handle
    if handle is not None:
        try:
            with contextlib.suppress(HandleNotFound):
                await provider.cancel(handle)
            await drain_logs(ctx, row, provider, handle)
        except Unavailable as exc:
            logger.warning("cancelling %s failed, will retry: %s", row.id, exc)
            return False

    async def step(connection: AsyncConnection, current: JobRecord) -> None:
        if current.status.is_terminal:
            return
        changes: dict[str, Any] = {}
        await steps.note_truncation(connection, current, changes)
        changes.update(endpoints=[], **steps.final_cost(current, datetime.now(UTC)))
        if budgets.stopped_for_budget(current):
            # Stopped at a spending limit, not at the user's request: it fails, and the
            # results keep the reason recorded when the limit was reached.
            await jobs_service.transition(
                connection,
                current,
                JobStatus.FAILED,
                message="The workload was stopped: a spending limit was reached.",
                changes=changes,
            )
            return
        await jobs_service.transition(
            connection,
            current,
            JobStatus.CANCELLED,
            message="Cancelled; the workload was stopped.",
            changes=changes,
        )

    await steps.record(ctx, row.id, step)
    return True


@tracing.engine_step("release")
async def release(ctx: steps.Context, row: JobRecord, provider: Provider | None) -> bool:
    """Free what a finished job's workload holds, then give the job up. Returns whether it
    is done (False: try again later)."""
    if row.needs_release and row.handle is not None and provider is not None:
        try:
            await provider.release(row.handle)
        except HandleNotFound:
            pass
        except Unavailable as exc:
            logger.warning("releasing %s failed, will retry: %s", row.id, exc)
            return False

    async def step(connection: AsyncConnection, current: JobRecord) -> None:
        await jobs_repository.update_job(
            connection, current.id, {"needs_release": False, "endpoints": []}
        )
        await repository.let_go(connection, ctx.owner, [current.id])

    await steps.record(ctx, row.id, step)
    return True
