"""The running totals behind meta.pagination.total stay exact."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.jobs import repository
from tests.factories import API, seed_jobs


async def _count_rows(db: AsyncEngine) -> int:
    async with db.connect() as connection:
        return int(
            (await connection.execute(sa.text("SELECT count(*) FROM job_counts"))).scalar_one()
        )


async def test_many_deltas_are_folded_without_changing_totals(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    statuses = ["pending", "running", "completed"]
    await seed_jobs(
        db,
        "alpha",
        [{"status": statuses[i % 3]} for i in range(repository.COMPACT_COUNTS_AFTER + 50)],
    )
    assert await _count_rows(db) > repository.COMPACT_COUNTS_AFTER

    first = (await client.get(f"{API}/jobs")).json()["meta"]["pagination"]["total"]
    after = (await client.get(f"{API}/jobs")).json()["meta"]["pagination"]["total"]
    running = (await client.get(f"{API}/jobs", params={"status": "running"})).json()

    assert first == after == repository.COMPACT_COUNTS_AFTER + 50
    assert running["meta"]["pagination"]["total"] == (repository.COMPACT_COUNTS_AFTER + 50 + 1) // 3
    assert await _count_rows(db) == 3


async def test_updates_that_keep_the_status_add_no_rows(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    await seed_jobs(db, "alpha", [{"status": "running"}])
    before = await _count_rows(db)
    async with db.begin() as connection:
        await connection.execute(sa.text("UPDATE jobs SET cost_current = 1"))
    assert await _count_rows(db) == before


async def test_deleted_jobs_leave_the_totals(client: httpx.AsyncClient, db: AsyncEngine) -> None:
    await seed_jobs(db, "alpha", [{}, {}, {}])
    async with db.begin() as connection:
        await connection.execute(
            sa.text("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs LIMIT 2)")
        )
    total = (await client.get(f"{API}/jobs")).json()["meta"]["pagination"]["total"]
    assert total == 1
