"""An account's effective limits, cached per process: the one lookup every limit reads.

`limits_for` answers from a per-process cache for a few seconds; `cortex-gateway accounts set`
notifies every process (app.notify.ACCOUNTS_CHANGED), which empties it, so a change is
effective everywhere within a notification's delay, and within TTL_SECONDS at the latest.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.accounts import repository
from app.accounts.limits import AccountLimits, Budget, BudgetPeriod, defaults
from app.settings import Settings

TTL_SECONDS = 5.0
# budget_period stored as this: explicitly no budget, whatever the default.
NO_BUDGET = "none"

_overrides: dict[str, tuple[Mapping[str, Any] | None, float]] = {}


def forget_limits() -> None:
    """Called on every ACCOUNTS_CHANGED notification (and listener reconnect)."""
    _overrides.clear()


async def limits_for(
    connection: AsyncConnection, account_id: str, settings: Settings
) -> AccountLimits:
    """The account's limits: the defaults, overridden by its row of account_limits."""
    cached = _overrides.get(account_id)
    if cached is not None and cached[1] > time.monotonic():
        row = cached[0]
    else:
        found = await repository.get_overrides(connection, account_id)
        row = dict(found) if found is not None else None
        if len(_overrides) > 10_000:
            _overrides.clear()
        _overrides[account_id] = (row, time.monotonic() + TTL_SECONDS)
    return apply_overrides(defaults(settings), row)


def apply_overrides(base: AccountLimits, row: Mapping[str, Any] | None) -> AccountLimits:
    """NULL keeps the default; 0 means unlimited (None in AccountLimits)."""
    if row is None:
        return base
    changes: dict[str, Any] = {}
    for name in (*QUOTAS, "rate_limit", "rate_burst", "max_engine_slots"):
        value = row.get(name)
        if value is not None:
            changes[name] = value or None
    period = row.get("budget_period")
    usd = row.get("budget_usd")
    if period == NO_BUDGET:
        changes["budget"] = None
    elif usd is not None or period is not None:
        base_budget = base.budget
        changes["budget"] = Budget(
            Decimal(usd) if usd is not None else (base_budget.usd if base_budget else Decimal(0)),
            BudgetPeriod(period)
            if period is not None
            else (base_budget.period if base_budget else BudgetPeriod.MONTH),
        )
    if row.get("allowed_providers") is not None:
        changes["allowed_providers"] = frozenset(row["allowed_providers"])
    return replace(base, **changes)


# The quotas, by the name that `details` and the account view give them.
QUOTAS = (
    "max_active_jobs",
    "max_jobs_per_batch",
    "max_streams_per_key",
    "max_webhook_endpoints",
    "max_templates",
)
