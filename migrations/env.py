"""Async alembic environment. The URL comes from config.attributes["url"] (the CLI and the
tests) or, for the plain `alembic` command, from the gateway's settings."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from app import database
from app.models import metadata
from app.settings import Settings

# Gateway processes starting together on one database migrate one at a time.
MIGRATION_LOCK_ID = 0x636F7274  # "cort"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        # Held until this transaction commits; the schema version is read after it.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


async def _migrate(url: str) -> None:
    engine = database.create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _url() -> str:
    url = context.config.attributes.get("url")
    return url if url else database.resolve_url(Settings())


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_migrate(_url()))
