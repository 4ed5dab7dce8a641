"""How the engine waits out a provider that is unavailable: exponential backoff with jitter
up to a cap, and, for a job not yet submitted, an end (`provider_unavailable`) once the
provider has been unavailable for the submit timeout. The job's timeline says what it is
waiting for at each attempt."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine import steps
from app.jobs import repository as jobs_repository
from app.jobs.lifecycle import JobStatus
from app.jobs.record import JobRecord
from providers.errors import Unavailable
from providers.types import FailureReason

logger = logging.getLogger(__name__)

# The first retry waits about this long; each next one twice as long, up to the cap. Jitter
# spreads the retries of many jobs that failed together (a network outage) apart.
RETRY_DELAY_FIRST = 0.5
RETRY_DELAY_MAX = 60.0
RETRY_JITTER = 0.2


def backoff(attempt: int) -> float:
    """Seconds to wait after the `attempt`-th failure in a row (1 for the first)."""
    delay: float = RETRY_DELAY_FIRST * 2.0 ** min(max(attempt - 1, 0), 30)
    delay *= random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    return min(delay, RETRY_DELAY_MAX)


def _reason(provider: str, exc: Unavailable) -> str:
    text = str(exc)
    return text.removeprefix(f"{provider}: ") or type(exc).__name__


async def submit_failed(
    ctx: steps.Context, row: JobRecord, provider: str, exc: Unavailable
) -> float | None:
    """Record a failed submit of a pending job: the seconds to wait before the next attempt,
    or None once the provider has been unavailable for the submit timeout (the job failed)."""

    async def step(connection: AsyncConnection, current: JobRecord) -> float | None:
        if current.status is not JobStatus.PENDING:
            return 0.0  # cancelled meanwhile: the engine looks again at once
        now = datetime.now(UTC)
        since = current.submit_failing_since or now
        attempt = current.submit_attempts + 1
        waited = (now - since).total_seconds()
        if waited >= ctx.submit_timeout:
            return None
        delay = min(backoff(attempt), ctx.submit_timeout - waited)
        message = (
            f"Waiting for {provider}: {_reason(provider, exc)}; retry {attempt} in {delay:.0f} s."
        )
        await jobs_repository.update_job(
            connection, current.id, {"submit_attempts": attempt, "submit_failing_since": since}
        )
        await jobs_repository.append_event(connection, current.id, "provider", message=message)
        return max(delay, 0.0)

    logger.warning("submitting %s to %s failed, will retry: %s", row.id, provider, exc)
    delay = await steps.record(ctx, row.id, step)
    if delay is None:
        await steps.fail(
            ctx,
            row.id,
            FailureReason.PROVIDER_UNAVAILABLE,
            f"{provider} stayed unavailable for {ctx.submit_timeout:.0f} s: "
            f"{_reason(provider, exc)}",
        )
    return delay


# What a successful submit resets.
SUBMITTED = {"submit_attempts": 0, "submit_failing_since": None}
