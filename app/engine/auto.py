"""The engine's side of `"provider": "auto"`: place a job on the cheapest candidate, and move
it to the next one when a network fails it before it started.

Each step is recorded before the next provider call, so a process that dies anywhere carries
on where it was: a job whose `provider` is still `auto` gets chosen for (and every candidate's
quote recorded as a `placement` event); a job with a provider but no handle gets submitted
there (adapters adopt what an earlier attempt created); a job a network failed before it
started (no bids, no offers, no node in time) or would not take at submission is released
there, remembered in `results.placement.tried`, and placed again among the others. When none
is left the job fails with reason `rejected` and what each provider said.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.admission import placement
from app.engine import steps
from app.jobs import repository as jobs_repository
from app.jobs import service as jobs_service
from app.jobs.lifecycle import JobStatus
from app.jobs.record import JobRecord
from app.observability import tracing
from providers.base import Provider
from providers.errors import (
    HandleNotFound,
    ImagePullFailed,
    Rejected,
    Unavailable,
)
from providers.registry import AUTO
from providers.types import FailureReason, Handle, WorkloadState, WorkloadStatus

logger = logging.getLogger(__name__)
EVENT = "placement"
_PLACEABLE = (JobStatus.PENDING, JobStatus.SCHEDULED)


def is_auto(row: JobRecord) -> bool:
    """Submitted with `"provider": "auto"` (its candidates are stored with it)."""
    return (row.config or {}).get("providers") is not None


def needs_placing(row: JobRecord) -> bool:
    """An auto job with no workload anywhere: not placed yet, or between two providers."""
    return is_auto(row) and row.handle is None and row.status in _PLACEABLE


def fails_over(row: JobRecord, status: WorkloadStatus) -> bool:
    """The network gave up on an auto job before it started: another may take it."""
    return (
        is_auto(row)
        and row.started_at is None
        and status.state is WorkloadState.FAILED
        and status.reason is not None
        and status.reason.value in placement.BEFORE_START_REASONS
    )


def _tried(row: JobRecord) -> list[dict[str, str]]:
    return list(((row.results or {}).get("placement") or {}).get("tried") or [])


@tracing.engine_step("place")
async def place(ctx: steps.Context, row: JobRecord) -> float | None:
    """One placement step. Returns seconds to wait before the next, or None."""
    spec = ctx.spec_of(row)
    if row.provider == AUTO:
        await _choose(ctx, row, spec)
        return None
    name = row.provider
    adapter = ctx.providers.get(name)
    if adapter is None:
        await _move_on(ctx, row, "this gateway has no adapter for it")
        return None
    try:
        quote = await adapter.quote(spec)
        handle = await adapter.submit(spec)
    except ImagePullFailed as exc:
        await steps.fail(ctx, row.id, FailureReason.IMAGE_PULL, str(exc))
        return None
    except Rejected as exc:
        await _move_on(ctx, row, f"refused it at submission: {exc}")
        return None
    except Unavailable as exc:
        await _move_on(ctx, row, f"unavailable at submission: {exc}")
        return None

    async def step(connection: AsyncConnection, current: JobRecord) -> bool:
        status = current.status
        placed = {"handle": handle, "needs_release": True, "log_cursor": None}
        if status.is_terminal or current.provider != name:
            # Cancelled while it was being submitted: what started must not keep running.
            await jobs_repository.update_job(connection, current.id, placed)
            return False
        price = steps.price_changes(quote, current.duration)
        message = f"Submitted to {name}, placed automatically."
        if status is JobStatus.PENDING:
            await jobs_service.transition(
                connection, current, JobStatus.SCHEDULED, message=message, changes=placed | price
            )
        else:  # scheduled (moved from another provider) or cancelling: stop() takes it from here
            await jobs_repository.update_job(connection, current.id, placed | price)
            await jobs_repository.append_event(connection, current.id, EVENT, message=message)
        return True

    if not await steps.record(ctx, row.id, step):
        await steps.stop_quietly(adapter, handle)
    return None


async def _choose(ctx: steps.Context, row: JobRecord, spec: Any) -> None:
    config = row.config or {}
    tried = {entry["provider"]: entry["said"] for entry in _tried(row)}
    candidates = await placement.compare(
        ctx.providers,
        spec,
        placement.candidate_names(config),
        max_price=config.get("maxPricePerHour"),
        tried=tried,
    )
    chosen = next((c for c in candidates if c.verdict is placement.Verdict.CHOSEN), None)

    async def step(connection: AsyncConnection, current: JobRecord) -> bool:
        if not needs_placing(current) or current.provider != AUTO:
            return False
        for candidate in candidates:
            if candidate.verdict is not placement.Verdict.TRIED:
                await jobs_repository.append_event(
                    connection,
                    current.id,
                    EVENT,
                    message=candidate.describe(),
                    data=candidate.event_data(),
                )
        if chosen is not None:
            await jobs_repository.update_job(connection, current.id, {"provider": chosen.provider})
        return chosen is None

    if await steps.record(ctx, row.id, step):
        await steps.fail(
            ctx,
            row.id,
            FailureReason.REJECTED,
            f"No provider would take it: {placement.summary(candidates)}",
        )


async def _move_on(ctx: steps.Context, row: JobRecord, said: str) -> None:
    """Forget the provider the job was at (its workload already released), remember what it
    said, and let the next placement step choose among the others."""
    name = row.provider

    async def step(connection: AsyncConnection, current: JobRecord) -> None:
        if current.status not in _PLACEABLE or current.provider != name:
            return
        results = dict(current.results or {})
        results["placement"] = {"tried": [*_tried(current), {"provider": name, "said": said}]}
        await jobs_repository.update_job(
            connection,
            current.id,
            {
                "provider": AUTO,
                "handle": None,
                "needs_release": False,
                "log_cursor": None,
                "endpoints": [],
                "results": results,
            },
        )
        await jobs_repository.append_event(
            connection,
            current.id,
            EVENT,
            message=f"{name}: {said.rstrip('.')}; placing it on the next provider.",
            data={"provider": name, "verdict": placement.Verdict.TRIED.value, "reason": said},
        )

    await steps.record(ctx, row.id, step)


async def fail_over(
    ctx: steps.Context,
    row: JobRecord,
    provider: Provider,
    handle: Handle,
    status: WorkloadStatus,
) -> steps.Progress:
    """Release what the job holds where it never started, and place it again."""
    try:
        await provider.release(handle)
    except HandleNotFound:
        pass
    except Unavailable as exc:
        logger.warning("releasing %s before failing over failed, will retry: %s", row.id, exc)
        return steps.Progress.QUIET
    reason = status.reason.value if status.reason is not None else "failed"
    await _move_on(ctx, row, f"{reason}: {status.message}" if status.message else reason)
    return steps.Progress.CHANGED
