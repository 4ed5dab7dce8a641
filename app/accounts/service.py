"""An account's effective limits (cached per process) and the quotas they set.

`limits_for` answers from a per-process cache for a few seconds; `cortex-gateway accounts set`
notifies every process (app.notify.ACCOUNTS_CHANGED), which empties it, so a change is
effective everywhere within a notification's delay, and within TTL_SECONDS at the latest.
The active-jobs quota is kept by places each active job holds (app.accounts.active_jobs), so
an account's submissions do not wait on one another; the other quota checks take the account's
lock first and count inside the caller's transaction, so two requests racing for the last
place are serialized and the second is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import errors
from app.accounts import budgets, repository, schemas
from app.accounts.active_jobs import Places
from app.accounts.limits import AccountLimits, BudgetPeriod

# The lookup is part of the service's surface: routes and the CLI reach it through here.
from app.accounts.lookup import NO_BUDGET as NO_BUDGET
from app.accounts.lookup import QUOTAS as QUOTAS
from app.accounts.lookup import TTL_SECONDS as TTL_SECONDS
from app.accounts.lookup import apply_overrides as apply_overrides
from app.accounts.lookup import forget_limits as forget_limits
from app.accounts.lookup import limits_for as limits_for
from app.settings import Settings


def _refuse(quota: str, limit: int, current: int, what: str) -> errors.QuotaExceeded:
    return errors.QuotaExceeded(
        f"Quota {quota} exceeded: this account may have at most {limit} {what}"
        f" (now {current}). Nothing was created.",
        [{"quota": quota, "limit": limit, "current": current}],
    )


async def take_places(
    connection: AsyncConnection,
    limits: AccountLimits,
    payer: budgets.Payer,
    *,
    jobs: int,
    projected: Decimal,
) -> Places:
    """In the transaction that stores `jobs` new jobs costing `projected` in all: their places
    in the account's active-jobs quota (taken as each job is stored, app.accounts.active_jobs),
    and the account's and the key's budgets. Either refuses, and the caller's transaction
    stores nothing. The account's lock is taken only when a budget applies, or when several
    jobs need places under a limit."""
    places = Places(payer.account_id, limits.max_active_jobs, jobs)
    if budgets.applies(payer) or (places.limit is not None and jobs > 1):
        await places.lock(connection)
    await budgets.reserve(connection, payer, projected)
    return places


def check_batch_size(limits: AccountLimits, size: int) -> None:
    if limits.max_jobs_per_batch is not None and size > limits.max_jobs_per_batch:
        raise errors.QuotaExceeded(
            f"Quota max_jobs_per_batch exceeded: a batch of this account may hold at most"
            f" {limits.max_jobs_per_batch} jobs (this one has {size}). Nothing was created.",
            [{"quota": "max_jobs_per_batch", "limit": limits.max_jobs_per_batch, "current": size}],
        )


async def check_webhook_endpoints(
    connection: AsyncConnection, account_id: str, limits: AccountLimits
) -> None:
    if limits.max_webhook_endpoints is None:
        return
    await repository.lock_account(connection, account_id)
    current = await repository.count_webhook_endpoints(connection, account_id)
    if current >= limits.max_webhook_endpoints:
        raise _refuse(
            "max_webhook_endpoints", limits.max_webhook_endpoints, current, "webhook endpoints"
        )


async def check_templates(
    connection: AsyncConnection, account_id: str, limits: AccountLimits
) -> None:
    if limits.max_templates is None:
        return
    await repository.lock_account(connection, account_id)
    current = await repository.count_templates(connection, account_id)
    if current >= limits.max_templates:
        raise _refuse("max_templates", limits.max_templates, current, "job templates")


def allowed_providers(
    limits: AccountLimits, provider: str, candidates: Sequence[str] | None = None
) -> list[str] | None:
    """Refuse a named provider the account may not use (403 PROVIDER_NOT_ALLOWED); for an
    `auto` job, the candidates it may use (None: no restriction), refused when none is left."""
    allowed = limits.allowed_providers
    if allowed is None:
        return None if candidates is None else list(candidates)
    if candidates is None:
        if provider not in allowed:
            raise _not_allowed([provider], allowed)
        return None
    kept = [name for name in candidates if name in allowed]
    if not kept:
        raise _not_allowed(list(candidates), allowed)
    return kept


def _not_allowed(asked: Sequence[str], allowed: frozenset[str]) -> errors.ProviderNotAllowed:
    listed = ", ".join(sorted(allowed)) or "none"
    return errors.ProviderNotAllowed(
        f"This account may not use {', '.join(asked)}; it may use: {listed}.",
        [{"provider": name, "allowed": sorted(allowed)} for name in asked],
    )


@dataclass(frozen=True)
class BudgetStatus:
    usd: Decimal
    period: BudgetPeriod
    spent: Decimal
    left: Decimal


async def budget_status(
    connection: AsyncConnection, account_id: str, limits: AccountLimits
) -> budgets.BudgetStatus | None:
    """The account's budget with what is spent in its period and what is left; None without
    a budget."""
    return await budgets.budget_status(connection, account_id, limits)


async def usage(
    connection: AsyncConnection, account_id: str, key_id: str, stale_seconds: float
) -> dict[str, int]:
    """The current use each quota counts (streams: the calling key's)."""
    streams = await repository.count_account_streams(connection, account_id, stale_seconds)
    return {
        "max_active_jobs": await repository.count_active_jobs(connection, account_id),
        "max_streams_per_key": streams.get(key_id, 0),
        "max_webhook_endpoints": await repository.count_webhook_endpoints(connection, account_id),
        "max_templates": await repository.count_templates(connection, account_id),
    }


async def find_account(connection: AsyncConnection, id_or_name: str) -> RowMapping | None:
    return await repository.find_account(connection, id_or_name)


async def describe(
    connection: AsyncConnection,
    account_id: str,
    key_id: str,
    settings: Settings,
    stale_seconds: float,
) -> schemas.Account:
    found = await repository.find_account(connection, account_id)
    if found is None:
        raise errors.Unauthorized("Invalid or revoked API key.")
    limits = await limits_for(connection, account_id, settings)
    used = await usage(connection, account_id, key_id, stale_seconds)
    budget = await budget_status(connection, account_id, limits)
    return schemas.Account(
        id=found["id"],
        name=found["name"],
        rate_limit=schemas.RateLimit(
            requests_per_second=limits.rate_limit, burst=limits.rate_burst
        ),
        quotas=[
            schemas.Quota(
                name=name,
                limit=getattr(limits, name),
                current=None if name == "max_jobs_per_batch" else used[name],
            )
            for name in QUOTAS
        ],
        max_engine_slots=limits.max_engine_slots,
        budget=None
        if budget is None
        else schemas.BudgetStatus(
            usd=float(budget.limit),
            period=budget.period.value,
            spent=float(budget.spent),
            left=float(budget.left),
        ),
        allowed_providers=sorted(limits.allowed_providers)
        if limits.allowed_providers is not None
        else None,
    )


class AccountNotFound(Exception):
    pass


async def set_limits(
    connection: AsyncConnection, id_or_name: str, values: Mapping[str, Any]
) -> RowMapping:
    """Store overrides (a None value clears one back to the default); every gateway process
    forgets the limits it remembered when this commits."""
    found = await repository.find_account(connection, id_or_name)
    if found is None:
        raise AccountNotFound(id_or_name)
    if values:
        await repository.set_overrides(connection, found["id"], values)
    return found


async def list_accounts(connection: AsyncConnection) -> Sequence[RowMapping]:
    return await repository.list_accounts(connection)


async def overrides(connection: AsyncConnection, account_id: str) -> Mapping[str, Any] | None:
    row = await repository.get_overrides(connection, account_id)
    return dict(row) if row is not None else None
