"""Idempotency-key queries. The primary key (account, key) settles races: a second request
with a key that an unfinished transaction has just claimed waits for that transaction, then
finds its stored response."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import idempotency_keys

# Expired keys of an account deleted per keyed request: more than it can create, so they
# never pile up, and few enough that no request pays for a backlog all at once.
PURGE_BATCH = 100


def _expired(window: timedelta) -> sa.ColumnElement[bool]:
    return idempotency_keys.c.created_at < sa.func.now() - window


async def claim(
    connection: AsyncConnection,
    *,
    account_id: str,
    key: str,
    fingerprint: str,
    method: str,
    path: str,
    window: timedelta,
) -> bool:
    """Take the key for this request (a new key, or one older than `window`). False when the
    key is live: then it has a stored response, committed by the request that took it."""
    values = {"fingerprint": fingerprint, "method": method, "path": path}
    statement = (
        pg_insert(idempotency_keys)
        .values(account_id=account_id, key=key, **values)
        .on_conflict_do_update(
            index_elements=[idempotency_keys.c.account_id, idempotency_keys.c.key],
            set_={
                **values,
                "status_code": None,
                "response_body": None,
                "created_at": sa.func.now(),
            },
            where=_expired(window),
        )
        .returning(idempotency_keys.c.key)
    )
    result = await connection.execute(statement)
    return result.first() is not None


async def get(connection: AsyncConnection, account_id: str, key: str) -> RowMapping | None:
    result = await connection.execute(
        sa.select(idempotency_keys).where(
            idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
        )
    )
    return result.mappings().one_or_none()


async def store_response(
    connection: AsyncConnection, account_id: str, key: str, status_code: int, body: str
) -> None:
    await connection.execute(
        sa.update(idempotency_keys)
        .where(idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key)
        .values(status_code=status_code, response_body=body)
    )


async def purge_expired(connection: AsyncConnection, account_id: str, window: timedelta) -> None:
    """Delete some of the account's expired keys. SKIP LOCKED: two requests purging at once
    never wait on each other."""
    expired = (
        sa.select(idempotency_keys.c.key)
        .where(idempotency_keys.c.account_id == account_id, _expired(window))
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    await connection.execute(
        sa.delete(idempotency_keys).where(
            idempotency_keys.c.account_id == account_id, idempotency_keys.c.key.in_(expired)
        )
    )
