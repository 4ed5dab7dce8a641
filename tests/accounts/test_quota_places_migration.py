"""Migration 0016 gives the jobs already active when it runs distinct quota places per
account, so the quota holds across the upgrade; finished jobs need none."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app import database, migrate
from tests.conftest import _admin

ACTIVE = ("pending", "scheduled", "running")
STATUSES = ["pending", "running", "completed", "scheduled", "failed", "pending", "cancelling"]


@pytest.fixture
def scratch_url(postgres_server_url: str) -> Iterator[str]:
    name = f"cortex_places_{secrets.token_hex(4)}"
    asyncio.run(_admin(postgres_server_url, f'CREATE DATABASE "{name}"'))
    yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _run(url: str, statement: str, params: list[dict[str, Any]] | None = None) -> list[Any]:
    engine = database.create_engine(url, pool_size=1)
    try:
        async with database.transaction(engine) as connection:
            result = await connection.execute(sa.text(statement), params or [{}])
            return list(result) if result.returns_rows else []
    finally:
        await engine.dispose()


def test_active_jobs_get_distinct_places_per_account(scratch_url: str) -> None:
    migrate.upgrade(scratch_url, "0015")
    asyncio.run(
        _run(
            scratch_url,
            "INSERT INTO accounts (id, name) VALUES (:id, :id)",
            [{"id": "acc_one"}, {"id": "acc_two"}],
        )
    )
    rows = [
        {"id": f"job_{account}_{n}", "account": f"acc_{account}", "status": status}
        for account in ("one", "two")
        for n, status in enumerate(STATUSES)
    ]
    asyncio.run(
        _run(
            scratch_url,
            "INSERT INTO jobs (id, account_id, provider, status, image, cpu, memory, storage,"
            " duration, config, results) VALUES (:id, :account, 'local', :status, 'busybox',"
            " 500, '64Mi', '1Gi', 60, '{}', '{}')",
            rows,
        )
    )
    migrate.upgrade(scratch_url)
    places = asyncio.run(
        _run(scratch_url, "SELECT account_id, status, quota_slot FROM jobs ORDER BY id")
    )
    for account in ("acc_one", "acc_two"):
        mine = [(status, place) for owner, status, place in places if owner == account]
        active = [place for status, place in mine if status in ACTIVE]
        assert sorted(active) == [0, 1, 2, 3]
        assert [place for status, place in mine if status not in ACTIVE] == [None] * 3
    migrate.downgrade(scratch_url, "0015")
    migrate.upgrade(scratch_url)
