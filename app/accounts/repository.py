"""Account limits, the use each quota counts, and the per-account lock quotas take."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import database
from app.models import (
    account_limits,
    accounts,
    job_templates,
    jobs,
    stream_leases,
    webhook_endpoints,
)
from app.models.jobs import ACTIVE_STATUSES, is_active
from app.notify import ACCOUNTS_CHANGED, NOTIFY_CHANNEL

# Advisory lock namespaces (the first key of pg_advisory_xact_lock(int, int)).
_ACCOUNT_LOCK, _KEY_LOCK = 0x0AC0, 0x0AC1


async def find_account(connection: AsyncConnection, id_or_name: str) -> RowMapping | None:
    result = await connection.execute(
        sa.select(accounts.c.id, accounts.c.name).where(
            sa.or_(accounts.c.id == id_or_name, accounts.c.name == id_or_name)
        )
    )
    return result.mappings().first()


async def list_accounts(connection: AsyncConnection) -> Sequence[RowMapping]:
    result = await connection.execute(
        sa.select(accounts.c.id, accounts.c.name, account_limits)
        .select_from(accounts.outerjoin(account_limits))
        .order_by(accounts.c.created_at, accounts.c.id)
    )
    return result.mappings().all()


async def get_overrides(connection: AsyncConnection, account_id: str) -> RowMapping | None:
    result = await connection.execute(
        sa.select(account_limits).where(account_limits.c.account_id == account_id)
    )
    return result.mappings().one_or_none()


async def set_overrides(
    connection: AsyncConnection, account_id: str, values: Mapping[str, Any]
) -> None:
    """Store the given columns (None clears one back to the default) and tell every process."""
    row = {**values, "updated_at": sa.func.now()}
    await connection.execute(
        pg_insert(account_limits)
        .values(account_id=account_id, **row)
        .on_conflict_do_update(index_elements=[account_limits.c.account_id], set_=row)
    )
    await connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, ACCOUNTS_CHANGED)))


async def lock_account(connection: AsyncConnection, account_id: str) -> None:
    """Serialize one account's submissions (their quota and budget checks) until the
    transaction ends, so that two concurrent ones cannot both take the last place or dollar."""
    await connection.execute(_LOCK_ACCOUNT, {"name": account_id})


async def lock_key(connection: AsyncConnection, key_id: str) -> None:
    await connection.execute(_LOCK_KEY, {"name": key_id})


async def count_active_jobs(connection: AsyncConnection, account_id: str) -> int:
    [row] = await database.fetch(connection, _COUNT_ACTIVE_JOBS, {"account_id": account_id})
    return int(row[0])


# Built once: every submission runs these (building a statement costs more than running it).
def _advisory_lock(space: int) -> sa.Select[Any]:
    name = sa.bindparam("name", type_=sa.Text)
    return sa.select(sa.func.pg_advisory_xact_lock(space, sa.func.hashtext(name)))


_LOCK_ACCOUNT = _advisory_lock(_ACCOUNT_LOCK)
_LOCK_KEY = _advisory_lock(_KEY_LOCK)
_COUNT_ACTIVE_JOBS = (
    sa.select(sa.func.count())
    .select_from(jobs)
    .where(
        jobs.c.account_id == sa.bindparam("account_id", type_=sa.Text),
        jobs.c.status.in_(ACTIVE_STATUSES),
    )
)


async def has_places_from(connection: AsyncConnection, account_id: str, limit: int) -> bool:
    """Whether an active job of the account holds a quota place at or above `limit` (the limit
    was lowered below it, or it was stored without a place: it counts all the same)."""
    [row] = await database.fetch(
        connection, _HAS_PLACES_FROM, {"account_id": account_id, "limit": limit}
    )
    return bool(row["held"])


async def free_place(connection: AsyncConnection, account_id: str, limit: int) -> int | None:
    """The lowest quota place in [0, limit) no active job of the account holds (None: all are
    held), as far as committed jobs and this transaction's own show."""
    rows = await database.fetch(connection, _FREE_PLACE, {"account_id": account_id, "limit": limit})
    return int(rows[0]["place"]) if rows else None


def holds_places_from(
    account_id: sa.ColumnElement[str], limit: sa.ColumnElement[int]
) -> sa.ColumnElement[bool]:
    """Whether an active job of the account holds a quota place at or above the limit (or none
    at all): then a random place below the limit does not keep the count within it.

    Two probes of the (account_id, quota_slot) index, each the same whatever the limit: as
    one EXISTS with `quota_slot IS NULL OR quota_slot >= :limit`, the INSERT carrying it took
    16-29 ms instead of 2 ms per job as a prepared statement, at 20,000 active jobs (its plan
    for an unknown limit read more than the one entry)."""
    placeless, highest = jobs.alias("placeless"), jobs.alias("highest")
    return sa.or_(
        sa.exists().where(
            placeless.c.account_id == account_id,
            is_active(placeless.c.status),
            placeless.c.quota_slot.is_(None),
        ),
        sa.func.coalesce(
            sa.select(sa.func.max(highest.c.quota_slot))
            .where(highest.c.account_id == account_id, is_active(highest.c.status))
            .scalar_subquery(),
            -1,
        )
        >= limit,
    )


# Both read the unique index on (account_id, quota_slot) of active jobs.
_ACCOUNT = sa.bindparam("account_id", type_=sa.Text)
_HAS_PLACES_FROM = sa.select(
    holds_places_from(_ACCOUNT, sa.bindparam("limit", type_=sa.BigInteger)).label("held")
)


def _free_place() -> sa.Select[Any]:
    """Place 0 if free, else the first place after a held one that is free: the index read in
    order stops at the first gap, however large the limit."""
    held, following = jobs.alias("held"), jobs.alias("following")

    def taken(table: sa.FromClause, place: sa.ColumnElement[int]) -> sa.Exists:
        return sa.exists().where(
            table.c.account_id == _ACCOUNT,
            is_active(table.c.status),
            table.c.quota_slot == place,
        )

    zero = sa.literal(0, sa.BigInteger)
    candidates = sa.union_all(
        sa.select(zero.label("place")).where(~taken(jobs, zero)),
        sa.select((held.c.quota_slot + 1).label("place"))
        .where(
            held.c.account_id == _ACCOUNT,
            is_active(held.c.status),
            held.c.quota_slot >= 0,
            ~taken(following, held.c.quota_slot + 1),
        )
        .order_by(held.c.quota_slot)
        .limit(1),
    ).subquery("candidates")
    return (
        sa.select(candidates.c.place)
        .where(candidates.c.place < sa.bindparam("limit", type_=sa.BigInteger))
        .order_by(candidates.c.place)
        .limit(1)
    )


_FREE_PLACE = _free_place()


async def count_webhook_endpoints(connection: AsyncConnection, account_id: str) -> int:
    return await _count(
        connection,
        sa.select(sa.func.count())
        .select_from(webhook_endpoints)
        .where(webhook_endpoints.c.account_id == account_id),
    )


async def count_templates(connection: AsyncConnection, account_id: str) -> int:
    return await _count(
        connection,
        sa.select(sa.func.count())
        .select_from(job_templates)
        .where(job_templates.c.account_id == account_id),
    )


async def count_streams(connection: AsyncConnection, key_id: str, stale_seconds: float) -> int:
    """Open streams of a key; a lease whose process stopped refreshing it no longer counts."""
    return await _count(
        connection,
        sa.select(sa.func.count())
        .select_from(stream_leases)
        .where(stream_leases.c.key_id == key_id, _fresh(stale_seconds)),
    )


async def count_account_streams(
    connection: AsyncConnection, account_id: str, stale_seconds: float
) -> dict[str, int]:
    result = await connection.execute(
        sa.select(stream_leases.c.key_id, sa.func.count())
        .where(stream_leases.c.account_id == account_id, _fresh(stale_seconds))
        .group_by(stream_leases.c.key_id)
    )
    return {str(row[0]): int(row[1]) for row in result}


async def insert_lease(
    connection: AsyncConnection, lease_id: str, account_id: str, key_id: str, process: str
) -> None:
    await connection.execute(
        sa.insert(stream_leases).values(
            id=lease_id, account_id=account_id, key_id=key_id, process=process
        )
    )


async def delete_leases(connection: AsyncConnection, lease_ids: Iterable[str]) -> None:
    await connection.execute(
        sa.delete(stream_leases).where(stream_leases.c.id.in_(list(lease_ids)))
    )


async def refresh_leases(
    connection: AsyncConnection, lease_ids: Sequence[str], stale_seconds: float
) -> None:
    """Keep these leases alive, and drop every lease nobody refreshed."""
    if lease_ids:
        await connection.execute(
            sa.update(stream_leases)
            .where(stream_leases.c.id.in_(list(lease_ids)))
            .values(heartbeat_at=sa.func.now())
        )
    await connection.execute(sa.delete(stream_leases).where(sa.not_(_fresh(stale_seconds))))


def _fresh(stale_seconds: float) -> sa.ColumnElement[bool]:
    return stream_leases.c.heartbeat_at > sa.func.now() - sa.func.make_interval(
        0, 0, 0, 0, 0, 0, stale_seconds
    )


async def _count(connection: AsyncConnection, query: sa.Select[Any]) -> int:
    return int((await connection.execute(query)).scalar_one())


async def delete_process_leases(connection: AsyncConnection, process: str) -> None:
    await connection.execute(sa.delete(stream_leases).where(stream_leases.c.process == process))
