"""An account's effective limits: the operator's defaults (settings), overridden per account.

Every part of the gateway that enforces a limit asks here (the rate limiter, the quotas, the
budget checks, the engine's fair shares), so a limit has one meaning and one source.
Per-account overrides are stored in the `account_limits` table and changed with
`cortex-gateway accounts set`; every process hears the change through app.notify's channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from app.settings import Settings


class BudgetPeriod(StrEnum):
    DAY = "day"  # the UTC calendar day
    MONTH = "month"  # the UTC calendar month
    TOTAL = "total"  # since the account was created


@dataclass(frozen=True)
class Budget:
    usd: Decimal
    period: BudgetPeriod


@dataclass(frozen=True)
class AccountLimits:
    """None means unlimited for that limit."""

    # Requests per second per API key (a token bucket holding `rate_burst` requests).
    rate_limit: float | None
    rate_burst: int | None
    # Jobs pending, scheduled or running at once.
    max_active_jobs: int | None
    max_jobs_per_batch: int | None
    # Streams (SSE) open at once per API key.
    max_streams_per_key: int | None
    max_webhook_endpoints: int | None
    max_templates: int | None
    # Engine slots (jobs driven at once) across all processes; None: only the fair share.
    max_engine_slots: int | None
    budget: Budget | None
    # Providers the account may submit to; None: every configured provider.
    allowed_providers: frozenset[str] | None


def defaults(settings: Settings) -> AccountLimits:
    """The limits of an account without overrides."""
    budget = (
        Budget(
            Decimal(str(settings.default_budget_usd)), BudgetPeriod(settings.default_budget_period)
        )
        if settings.default_budget_usd is not None
        else None
    )
    return AccountLimits(
        rate_limit=settings.default_rate_limit or None,
        rate_burst=settings.default_rate_burst or None,
        max_active_jobs=settings.default_max_active_jobs or None,
        max_jobs_per_batch=settings.default_max_jobs_per_batch or None,
        max_streams_per_key=settings.default_max_streams_per_key or None,
        max_webhook_endpoints=settings.default_max_webhook_endpoints or None,
        max_templates=settings.default_max_templates or None,
        max_engine_slots=settings.default_max_engine_slots or None,
        budget=budget,
        allowed_providers=None,
    )
