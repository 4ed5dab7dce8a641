"""API key use cases, shared by the CLI and the request authenticator. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import ids
from app.auth import keys, repository
from app.auth.scopes import Scope

if TYPE_CHECKING:
    from app.auth.cache import KeyCache

DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True)
class AuthContext:
    """Who is calling: the key and its account and scopes."""

    key_id: str
    account_id: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class CreatedKey:
    key: RowMapping
    secret: str


class KeyNotFound(LookupError):
    pass


async def create_key(
    connection: AsyncConnection,
    *,
    name: str,
    account: str,
    scopes: Sequence[Scope],
    budget_usd: Decimal | None = None,
    budget_period: str | None = None,
) -> CreatedKey:
    """A new key; with `budget_usd`, a spending budget of its own per `budget_period` (day,
    month or total), beside its account's (app.accounts.budgets)."""
    account_id = await repository.get_or_create_account(connection, ids.new_id("acc"), account)
    secret = keys.generate()
    row = await repository.insert_key(
        connection,
        id=ids.new_id("key"),
        account_id=account_id,
        name=name,
        secret_hash=keys.hash_secret(secret),
        prefix=keys.display_prefix(secret),
        scopes=[scope.value for scope in scopes],
        budget_usd=budget_usd,
        budget_period=budget_period if budget_usd is not None else None,
    )
    return CreatedKey(key=row, secret=secret)


async def list_keys(connection: AsyncConnection) -> Sequence[RowMapping]:
    return await repository.list_keys(connection)


async def revoke_key(connection: AsyncConnection, key_id: str) -> RowMapping:
    row = await repository.revoke_key(connection, key_id)
    if row is None:
        raise KeyNotFound(key_id)
    return row


async def key_is_active(connection: AsyncConnection, key_id: str) -> bool:
    """The key exists and is not revoked (what an open stream of it checks)."""
    row = await repository.get_key(connection, key_id)
    return row is not None and row["revoked_at"] is None


async def has_any_key(connection: AsyncConnection) -> bool:
    return await repository.count_keys(connection) > 0


async def authenticate(
    connection: AsyncConnection, secret: str, cache: KeyCache | None = None
) -> AuthContext | None:
    """The caller behind a presented key, or None for an unknown or revoked one."""
    if not keys.looks_like_key(secret):
        return None
    secret_hash = keys.hash_secret(secret)
    if cache is not None and (cached := cache.get(secret_hash)) is not None:
        return cached
    row = await repository.find_active_key(connection, secret_hash)
    if row is None:
        return None
    if row["stale"]:
        await repository.touch_key(connection, row["id"])
    auth = AuthContext(key_id=row["id"], account_id=row["account_id"], scopes=tuple(row["scopes"]))
    if cache is not None:
        cache.put(secret_hash, auth)
    return auth


async def lock_and_check_no_keys(connection: AsyncConnection) -> bool:
    """True when no key exists yet; holds a lock to the end of the transaction so that
    gateways starting together do not each create a first key."""
    await repository.lock_key_bootstrap(connection)
    return not await has_any_key(connection)
