"""The migrations build exactly the schema the code declares, and go down and up again."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection, make_url

from app import database, migrate
from app.models import metadata
from tests.conftest import _admin


@pytest.fixture
def scratch_url(postgres_server_url: str) -> Iterator[str]:
    name = f"cortex_migrations_{secrets.token_hex(4)}"
    asyncio.run(_admin(postgres_server_url, f'CREATE DATABASE "{name}"'))
    yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


def _inspect(url: str, check: object) -> object:
    async def run() -> object:
        engine = database.create_engine(url, pool_size=1)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(check)  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _tables(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


def test_head_matches_the_declared_schema(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    assert _inspect(scratch_url, _differences) == []


def test_downgrade_to_base_and_up_again(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    migrate.downgrade(scratch_url, "base")
    assert _inspect(scratch_url, _tables) == {"alembic_version"}
    migrate.upgrade(scratch_url)
    assert _inspect(scratch_url, _differences) == []


def test_upgrading_twice_changes_nothing(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    migrate.upgrade(scratch_url)
    assert {"accounts", "api_keys", "jobs", "job_events", "job_counts"} <= _inspect(
        scratch_url, _tables
    )  # type: ignore[operator]
