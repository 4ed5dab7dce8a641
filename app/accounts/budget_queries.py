"""The queries behind spending budgets: what an account or key has spent, and which jobs
must stop because a budget is reached."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import database
from app.models import api_keys, jobs

_TERMINAL = ("completed", "failed", "cancelled")
_UNFINISHED = ("pending", "scheduled", "running", "cancelling")

# A finished job's cost is stored; a started one accrues its rate since it started (as
# jobs.service computes cost.current, so the figures agree with what GET /jobs shows).
_ACCRUED = sa.case(
    (jobs.c.status.in_(_TERMINAL), jobs.c.cost_current),
    (
        jobs.c.started_at.is_not(None),
        jobs.c.usd_per_hour
        * sa.func.greatest(sa.extract("epoch", sa.func.now() - jobs.c.started_at), 0)
        / 3600,
    ),
    else_=sa.literal(Decimal(0)),
)
# What an unfinished job may still spend: its reservation (or its price's projection, once
# the network settled on one) beyond what it has accrued.
_STILL_TO_SPEND = sa.case(
    (
        jobs.c.status.in_(_UNFINISHED),
        sa.func.greatest(
            sa.func.greatest(jobs.c.cost_reserved, jobs.c.cost_projected) - _ACCRUED, 0
        ),
    ),
    else_=sa.literal(Decimal(0)),
)


async def try_lock_enforcer(connection: AsyncConnection) -> bool:
    """One gateway process at a time looks for budgets reached (to the end of the
    transaction); the others skip their turn."""
    result = await connection.execute(
        sa.select(sa.func.pg_try_advisory_xact_lock(sa.func.hashtext("cortex:budget-enforcer")))
    )
    return bool(result.scalar_one())


async def spend(
    connection: AsyncConnection,
    account_id: str,
    since: datetime | None,
    *,
    key_id: str | None = None,
) -> tuple[Decimal, Decimal]:
    """(accrued, still to spend by unfinished jobs) of the account's jobs created since
    `since` (all of them when None), only those `key_id` submitted if given."""
    query = sa.select(
        sa.func.coalesce(sa.func.sum(_ACCRUED), 0),
        sa.func.coalesce(sa.func.sum(_STILL_TO_SPEND), 0),
    ).where(jobs.c.account_id == account_id)
    if since is not None:
        query = query.where(jobs.c.created_at >= since)
    if key_id is not None:
        query = query.where(jobs.c.api_key_id == key_id)
    accrued, pending = (await connection.execute(query)).one()
    return Decimal(accrued), Decimal(pending)


async def key_budget(connection: AsyncConnection, key_id: str) -> Mapping[str, Any] | None:
    """The key's budget columns (`budget_usd`, `budget_period`), if it has a budget."""
    rows = await database.fetch(connection, _KEY_BUDGET, {"key_id": key_id})
    return rows[0] if rows else None


# Built once: every submission asks it.
_KEY_BUDGET = sa.select(api_keys.c.budget_usd, api_keys.c.budget_period).where(
    api_keys.c.id == sa.bindparam("key_id", type_=sa.Text), api_keys.c.budget_usd.is_not(None)
)


async def active_accounts(connection: AsyncConnection) -> list[str]:
    result = await connection.execute(
        sa.select(jobs.c.account_id).where(jobs.c.status.in_(_UNFINISHED)).distinct()
    )
    return [row[0] for row in result]


async def active_keys_with_budgets(connection: AsyncConnection) -> Sequence[RowMapping]:
    result = await connection.execute(
        sa.select(
            api_keys.c.id, api_keys.c.account_id, api_keys.c.budget_usd, api_keys.c.budget_period
        ).where(
            api_keys.c.budget_usd.is_not(None),
            api_keys.c.id.in_(sa.select(jobs.c.api_key_id).where(jobs.c.status.in_(_UNFINISHED))),
        )
    )
    return result.mappings().all()


async def jobs_over_their_cost(connection: AsyncConnection) -> list[str]:
    """Running jobs whose accrued cost reached their own `maxCostUsd`."""
    limit = jobs.c.config["maxCostUsd"].astext.cast(sa.Numeric)
    result = await connection.execute(
        sa.select(jobs.c.id).where(
            jobs.c.status.in_(("running", "scheduled")),
            jobs.c.config.has_key("maxCostUsd"),
            limit <= _ACCRUED,
        )
    )
    return [row[0] for row in result]


async def lock_unfinished(
    connection: AsyncConnection,
    *,
    account_id: str | None = None,
    key_id: str | None = None,
    job_ids: Sequence[str] | None = None,
) -> Sequence[RowMapping]:
    """The unfinished jobs (not already being cancelled) to stop, row-locked."""
    conditions: list[Any] = [jobs.c.status.in_(("pending", "scheduled", "running"))]
    if account_id is not None:
        conditions.append(jobs.c.account_id == account_id)
    if key_id is not None:
        conditions.append(jobs.c.api_key_id == key_id)
    if job_ids is not None:
        conditions.append(jobs.c.id.in_(list(job_ids)))
    result = await connection.execute(
        sa.select(jobs).where(*conditions).order_by(jobs.c.id).with_for_update()
    )
    return result.mappings().all()
