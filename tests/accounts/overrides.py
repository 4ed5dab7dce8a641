"""Setting an account's limits as `cortex-gateway accounts set` does, for tests whose gateway
runs in the test's own process."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.accounts import service


async def set_limits(db: AsyncEngine, account: str, **values: object) -> None:
    async with database.transaction(db) as connection:
        await service.set_limits(connection, account, values)
    # In another process the change arrives by notification; this one is told at once.
    service.forget_limits()
