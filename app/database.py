"""Connections to Postgres: the engine, and the transaction every use case runs in."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler

from app import embedded_postgres
from app.settings import Settings


def normalize_url(url: str) -> str:
    """Accept the URL forms people paste (postgres://, postgresql://) and use asyncpg."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def resolve_url(settings: Settings) -> str:
    """The configured DATABASE_URL, or the embedded server's (started on demand)."""
    if settings.database_url:
        return normalize_url(settings.database_url.replace("postgres://", "postgresql://", 1))
    return embedded_postgres.start(settings.data_dir)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping on every checkout (a round trip per request): a connection that died is
        # invalidated by the error it raises, and connections are renewed hourly.
        pool_recycle=3600,
        # Server-side statement timeout: one bad query must not hold a connection forever.
        connect_args={"server_settings": {"statement_timeout": "30000", "timezone": "UTC"}},
    )


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One use case, one transaction: committed when the block ends, rolled back on error."""
    async with engine.begin() as connection:
        yield connection


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """For reads that need no transaction: each statement commits on its own, which saves
    the BEGIN and COMMIT round trips (statements see their own snapshots)."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


async def fetch(
    connection: AsyncConnection, statement: sa.Select[Any], params: Mapping[str, Any]
) -> Sequence[Any]:
    """Rows of a statement built once, run straight on the asyncpg connection: for the hottest
    reads, where SQLAlchemy's execution and result layers cost more than the query itself.

    The rows are asyncpg Records (`row["name"]`, `row.items()`), so only for columns whose
    values need no SQLAlchemy result processing (text, numbers, times, JSONB: the driver's
    codecs, which the dialect set up, decode them alike). On a `reading()` connection, or in
    a transaction an earlier statement began; otherwise through SQLAlchemy as usual, which
    begins the transaction (SQLAlchemy's asyncpg adapter begins it with its first statement).
    """
    sync = connection.sync_connection
    if sync is not None:
        autocommit = sync.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        # The pooled connection without a greenlet round trip, unless it must reconnect.
        raw = sync.connection if not sync.invalidated else await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        if autocommit or driver.is_in_transaction():
            compiled = _compiled(statement, connection.dialect)
            expanded = compiled.construct_expanded_state(params)
            args = [expanded.parameters[name] for name in expanded.positiontup or ()]
            rows: Sequence[Any] = await driver.fetch(expanded.statement, *args)
            return rows
    result = await connection.execute(statement, dict(params))
    mappings: Sequence[Any] = result.mappings().all()
    return mappings


@functools.lru_cache(maxsize=256)
def _compiled(statement: sa.Select[Any], dialect: Dialect) -> SQLCompiler:
    return statement.compile(dialect=dialect)
