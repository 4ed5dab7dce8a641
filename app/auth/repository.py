"""Account and API key queries."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import accounts, api_keys, gateway_secrets
from app.notify import NOTIFY_CHANNEL

# last_used_at is refreshed at most this often, so a busy key does not write on every request.
LAST_USED_RESOLUTION = sa.text("interval '60 seconds'")

# Heard by every gateway process's listener (app.streams.listener).
KEYS_CHANGED = "keys"

_KEY_COLUMNS = (*api_keys.c, accounts.c.name.label("account_name"))


async def get_or_create_account(connection: AsyncConnection, account_id: str, name: str) -> str:
    """The id of the account called `name`, created with `account_id` if it is new."""
    await connection.execute(
        pg_insert(accounts).values(id=account_id, name=name).on_conflict_do_nothing()
    )
    result = await connection.execute(sa.select(accounts.c.id).where(accounts.c.name == name))
    return str(result.scalar_one())


async def insert_key(connection: AsyncConnection, **values: object) -> RowMapping:
    await connection.execute(sa.insert(api_keys).values(**values))
    key = await get_key(connection, str(values["id"]))
    assert key is not None
    return key


async def get_key(connection: AsyncConnection, key_id: str) -> RowMapping | None:
    result = await connection.execute(
        sa.select(*_KEY_COLUMNS).join(accounts).where(api_keys.c.id == key_id)
    )
    return result.mappings().one_or_none()


async def list_keys(connection: AsyncConnection) -> Sequence[RowMapping]:
    result = await connection.execute(
        sa.select(*_KEY_COLUMNS).join(accounts).order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return result.mappings().all()


_FIND_ACTIVE_KEY = sa.select(
    api_keys.c.id,
    api_keys.c.account_id,
    api_keys.c.scopes,
    sa.func.coalesce(api_keys.c.last_used_at < sa.func.now() - LAST_USED_RESOLUTION, True).label(
        "stale"
    ),
).where(api_keys.c.secret_hash == sa.bindparam("secret_hash"), api_keys.c.revoked_at.is_(None))


async def find_active_key(connection: AsyncConnection, secret_hash: bytes) -> RowMapping | None:
    result = await connection.execute(_FIND_ACTIVE_KEY, {"secret_hash": secret_hash})
    return result.mappings().one_or_none()


async def touch_key(connection: AsyncConnection, key_id: str) -> None:
    await connection.execute(
        sa.update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=sa.func.now())
    )


async def revoke_key(connection: AsyncConnection, key_id: str) -> RowMapping | None:
    """Revoke a key; revoking a revoked key keeps its first revocation time. Every gateway
    process forgets the keys it remembered when this commits."""
    await connection.execute(
        sa.update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    await connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, KEYS_CHANGED)))
    return await get_key(connection, key_id)


async def count_keys(connection: AsyncConnection) -> int:
    result = await connection.execute(sa.select(sa.func.count()).select_from(api_keys))
    return int(result.scalar_one())


async def lock_key_bootstrap(connection: AsyncConnection) -> None:
    await connection.execute(
        sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("cortex:first-key")))
    )


async def get_or_create_secret(connection: AsyncConnection, name: str, candidate: bytes) -> bytes:
    await connection.execute(
        pg_insert(gateway_secrets).values(name=name, value=candidate).on_conflict_do_nothing()
    )
    result = await connection.execute(
        sa.select(gateway_secrets.c.value).where(gateway_secrets.c.name == name)
    )
    return bytes(result.scalar_one())
