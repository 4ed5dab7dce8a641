"""Spending budgets: an account's (AccountLimits.budget), an API key's own, and a job's
`maxCostUsd`. Never commits.

Spend in a period is the accrued cost of the jobs created in it: a finished job's final cost,
a started one's rate times the time since it started, nothing for one not started yet. At
submission a job must fit in what is left, where what is left also excludes what unfinished
jobs may still spend (their projection at submission, less what they accrued), so that jobs
submitted side by side cannot together overrun a budget; the check and the insert happen
under the account's advisory lock, in one transaction. While jobs run, the engine stops them
once the accrued spend reaches a budget (stop_over_budget).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app import errors
from app.accounts import budget_queries, repository
from app.accounts.limits import AccountLimits, Budget, BudgetPeriod
from app.accounts.lookup import limits_for
from app.admission import Admission, ProviderSet
from app.admission.placement import Verdict
from app.auth.service import AuthContext
from app.envelope import utc_iso
from app.jobs import service as jobs_service
from app.jobs.lifecycle import JobStatus
from app.jobs.record import JobRecord
from app.settings import Settings
from providers.errors import ProviderError
from providers.types import FailureReason

_CENTS = Decimal("0.000001")


@dataclass(frozen=True)
class BudgetStatus:
    limit: Decimal
    period: BudgetPeriod
    period_start: datetime | None  # None: the period is the account's (or key's) whole life
    spent: Decimal  # accrued by the jobs created in the period
    committed: Decimal  # what its unfinished jobs may still spend, beyond what they accrued
    left: Decimal  # limit - spent - committed, never below zero


def period_start(period: BudgetPeriod, now: datetime | None = None) -> datetime | None:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if period is BudgetPeriod.DAY:
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is BudgetPeriod.MONTH:
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return None


async def budget_status(
    connection: AsyncConnection,
    account_id: str,
    limits: AccountLimits,
    *,
    key_id: str | None = None,
) -> BudgetStatus | None:
    """The account's budget with what is spent and left in its current period; with `key_id`,
    that key's own budget instead (None when there is no such budget)."""
    budget = limits.budget if key_id is None else await _key_budget(connection, key_id)
    if budget is None:
        return None
    return await _status(connection, account_id, budget, key_id=key_id)


async def _status(
    connection: AsyncConnection, account_id: str, budget: Budget, *, key_id: str | None
) -> BudgetStatus:
    start = period_start(budget.period)
    spent, committed = await budget_queries.spend(connection, account_id, start, key_id=key_id)
    spent, committed = spent.quantize(_CENTS), committed.quantize(_CENTS)
    left = max(budget.usd - spent - committed, Decimal(0))
    return BudgetStatus(budget.usd, budget.period, start, spent, committed, left)


async def _key_budget(connection: AsyncConnection, key_id: str) -> Budget | None:
    row = await budget_queries.key_budget(connection, key_id)
    if row is None:
        return None
    return Budget(Decimal(row["budget_usd"]), BudgetPeriod(row["budget_period"]))


@dataclass(frozen=True)
class Payer:
    """Who pays for a submission, and the budgets it must fit in."""

    account_id: str
    key_id: str
    account_budget: Budget | None
    key_budget: Budget | None


async def payer(connection: AsyncConnection, auth: AuthContext, limits: AccountLimits) -> Payer:
    return Payer(
        auth.account_id, auth.key_id, limits.budget, await _key_budget(connection, auth.key_id)
    )


async def projected_costs(
    providers: ProviderSet,
    payer: Payer,
    jobs: Sequence[tuple[Any, Admission]],
    *,
    batch: bool = False,
) -> list[Decimal]:
    """Each job's projected cost (price x duration; for `auto` the dearest candidate it may
    land on), asked of the providers only when some budget applies. Refuses (402) a job whose
    projection is over its own maxCostUsd; `jobs` pairs each JobSpec with its admission."""
    bounded = payer.account_budget is not None or payer.key_budget is not None
    costs: list[Decimal] = await asyncio.gather(
        *(
            _projected(providers, admitted, spec.duration)
            if bounded or spec.max_cost_usd is not None
            else _zero()
            for spec, admitted in jobs
        )
    )
    for index, ((spec, _), cost) in enumerate(zip(jobs, costs, strict=True)):
        if spec.max_cost_usd is not None and cost > Decimal(str(spec.max_cost_usd)):
            where = f"jobs[{index}]." if batch else ""
            raise errors.BudgetExceeded(
                f"This job's projected cost, ${cost}, is over its maxCostUsd of"
                f" ${spec.max_cost_usd:g}; nothing was created.",
                [
                    {
                        "budget": "job",
                        "field": f"{where}maxCostUsd",
                        "limit": spec.max_cost_usd,
                        "projected": float(cost),
                    }
                ],
            )
    return costs


async def _zero() -> Decimal:
    return Decimal(0)


async def _projected(providers: ProviderSet, admitted: Admission, duration: int) -> Decimal:
    if admitted.candidates:
        rates = [
            c.quote.usd_per_hour
            for c in admitted.candidates
            if c.quote is not None and c.verdict in (Verdict.CHOSEN, Verdict.ELIGIBLE)
        ]
        rate = max(rates, default=0.0)
    elif admitted.quote is not None:
        rate = admitted.quote.usd_per_hour
    else:
        adapter = providers.get(admitted.provider)
        assert adapter is not None, "an admitted job's provider has an adapter"
        try:
            async with asyncio.timeout(providers.timeout):
                rate = (await adapter.quote(admitted.spec)).usd_per_hour
        except (TimeoutError, ProviderError) as exc:
            raise errors.ProviderUnavailable(
                f"Provider {admitted.provider!r} gave no price for this job, so it cannot be"
                f" checked against the budget: {exc or 'no answer in time'}"
            ) from exc
    return (Decimal(str(rate)) * duration / 3600).quantize(_CENTS)


def applies(payer: Payer) -> bool:
    """Whether the account or the key has a budget (a submission then takes the account's
    lock, which reserve() needs)."""
    return payer.account_budget is not None or payer.key_budget is not None


async def reserve(connection: AsyncConnection, payer: Payer, projected: Decimal) -> None:
    """Refuse (402) jobs costing `projected` in all that do not fit in what is left of the
    account's or the key's budget. Holds the account's budget lock to the end of the caller's
    transaction, which must store the jobs with their reservations (cost_reserved)."""
    if not applies(payer):
        return
    await repository.lock_account(connection, payer.account_id)
    for kind, budget, key_id in (
        ("account", payer.account_budget, None),
        ("key", payer.key_budget, payer.key_id),
    ):
        if budget is None:
            continue
        status = await _status(connection, payer.account_id, budget, key_id=key_id)
        if projected > status.left:
            whose = "account's" if key_id is None else "API key's"
            raise errors.BudgetExceeded(
                f"The projected cost, ${projected}, is over what is left of the {whose}"
                f" {budget.period.value} budget of ${budget.usd} (${status.spent} spent,"
                f" ${status.committed} committed to unfinished jobs, ${status.left} left);"
                " nothing was created.",
                [_detail(kind, key_id, status, projected)],
            )


def _detail(
    kind: str, key_id: str | None, status: BudgetStatus, projected: Decimal
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "budget": kind,
        "limit": float(status.limit),
        "period": status.period.value,
        "periodStart": utc_iso(status.period_start),
        "spent": float(status.spent),
        "committed": float(status.committed),
        "left": float(status.left),
        "projected": float(projected),
    }
    if key_id is not None:
        detail["keyId"] = key_id
    return detail


async def stop_over_budget(connection: AsyncConnection, settings: Settings) -> list[str]:
    """Stop every unfinished job of an account or key whose accrued spend reached its budget,
    and every running job whose accrued cost reached its maxCostUsd; returns the ids of the
    jobs whose workloads the engine must now stop. One gateway process at a time does this
    (the others find the lock taken and return nothing)."""
    if not await budget_queries.try_lock_enforcer(connection):
        return []
    stopping: list[str] = []
    for account_id in await budget_queries.active_accounts(connection):
        limits = await limits_for(connection, account_id, settings)
        if limits.budget is None:
            continue
        status = await _status(connection, account_id, limits.budget, key_id=None)
        if status.spent >= status.limit:
            message = (
                f"Stopped: the account's {status.period.value} budget of ${status.limit} is"
                f" spent (${status.spent})."
            )
            rows = await budget_queries.lock_unfinished(connection, account_id=account_id)
            stopping += await _stop(connection, rows, message)
    for key in await budget_queries.active_keys_with_budgets(connection):
        budget = Budget(Decimal(key["budget_usd"]), BudgetPeriod(key["budget_period"]))
        status = await _status(connection, key["account_id"], budget, key_id=key["id"])
        if status.spent >= status.limit:
            message = (
                f"Stopped: API key {key['id']}'s {budget.period.value} budget of ${budget.usd}"
                f" is spent (${status.spent})."
            )
            rows = await budget_queries.lock_unfinished(connection, key_id=key["id"])
            stopping += await _stop(connection, rows, message)
    over = await budget_queries.jobs_over_their_cost(connection)
    if over:
        rows = await budget_queries.lock_unfinished(connection, job_ids=over)
        stopping += await _stop(connection, rows, "Stopped: its cost reached its maxCostUsd.")
    return stopping


async def _stop(connection: AsyncConnection, rows: Sequence[Any], message: str) -> list[str]:
    """A pending job ends now (an engine submitting it meanwhile stops what it started); a
    scheduled or running one is cancelled on its network by the engine and then fails
    (engine.actions.stop reads the reason recorded here)."""
    stopping = []
    for row in rows:
        job = JobRecord.from_row(row)
        results = {**job.results, "reason": FailureReason.BUDGET_EXCEEDED.value, "message": message}
        if job.status is JobStatus.PENDING:
            await jobs_service.transition(
                connection, job, JobStatus.FAILED, message=message, changes={"results": results}
            )
        else:
            await jobs_service.transition(
                connection,
                job,
                JobStatus.CANCELLING,
                message=message,
                changes={"results": results},
            )
        stopping.append(job.id)
    return stopping


def stopped_for_budget(job: JobRecord) -> bool:
    """Whether a cancelling job is being stopped for a budget (it then fails, not cancels)."""
    return (job.results or {}).get("reason") == FailureReason.BUDGET_EXCEEDED.value
