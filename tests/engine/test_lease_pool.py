"""Lease renewals go through while the engine's drivers hold every pooled connection.

With a large backlog an engine claims up to CORTEX_ENGINE_MAX_JOBS jobs and their drivers
queue for the pool; renewals queued behind them let leases lapse, and other engines took
the jobs over while they were still driven (found by bench/scale_out.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.admission.providers import ProviderSet
from app.application import create_app
from app.engine.loop import Engine
from tests.engine.conftest import busybox, engine_settings, submit
from tests.factories import API, Keys
from tests.servers import lifespan_app

LEASE = 1.5


async def test_leases_are_renewed_while_drivers_hold_every_pooled_connection(
    database_url: str, db: AsyncEngine, keys: Keys
) -> None:
    api_only = engine_settings(database_url, engine_enabled=False)
    async with lifespan_app(create_app(api_only)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            job_id = await submit(client, busybox("sleep 30"))

            pool = database.create_engine(database_url, pool_size=1)  # two connections
            settings = engine_settings(database_url, engine_lease_seconds=LEASE)
            engine = Engine(pool, ProviderSet(settings), settings)
            async with db.begin() as connection:
                await connection.execute(
                    sa.text(
                        "UPDATE jobs SET engine_owner = :owner,"
                        " lease_expires_at = now() + make_interval(secs => :lease) WHERE id = :id"
                    ),
                    {"owner": engine.owner, "lease": LEASE, "id": job_id},
                )
            # A driver that holds on to its job, and every pooled connection taken.
            engine._drivers[job_id] = asyncio.create_task(asyncio.sleep(3600))
            taken = [await pool.connect() for _ in range(2)]
            renewing = asyncio.create_task(engine._lease_loop())
            try:
                await asyncio.sleep(LEASE * 2.5)
                async with db.connect() as connection:
                    held = (
                        await connection.execute(
                            sa.text(
                                "SELECT engine_owner, lease_expires_at > now() AS live"
                                " FROM jobs WHERE id = :id"
                            ),
                            {"id": job_id},
                        )
                    ).one()
            finally:
                renewing.cancel()
                engine._drivers[job_id].cancel()
                for connection in taken:
                    await connection.close()
                await engine.lease_db.dispose()
                await pool.dispose()
                async with db.begin() as connection:
                    await connection.execute(
                        sa.text("UPDATE jobs SET engine_owner = NULL WHERE id = :id"),
                        {"id": job_id},
                    )
                await client.post(f"{API}/jobs/{job_id}/cancel")

    assert held.engine_owner == engine.owner
    assert held.live, "the lease lapsed while the pool was busy"


async def test_only_a_job_another_engine_took_stops_being_driven(
    database_url: str, db: AsyncEngine, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    api_only = engine_settings(database_url, engine_enabled=False)
    async with lifespan_app(create_app(api_only)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            let_go, taken = [await submit(client, busybox("sleep 30")) for _ in range(2)]

            pool = database.create_engine(database_url, pool_size=1)
            settings = engine_settings(database_url, engine_lease_seconds=LEASE)
            engine = Engine(pool, ProviderSet(settings), settings)
            # Between the lease loop's look at its drivers and the renewal, one driver let
            # its finished job go, and another engine took the other job over.
            async with db.begin() as connection:
                await connection.execute(
                    sa.text("UPDATE jobs SET engine_owner = :owner WHERE id = :id"),
                    {"owner": "vm:1:other", "id": taken},
                )
            drivers = {job: asyncio.create_task(asyncio.sleep(3600)) for job in (let_go, taken)}
            engine._drivers.update(drivers)
            renewing = asyncio.create_task(engine._lease_loop())
            try:
                await asyncio.sleep(LEASE * 0.7)
                cancelled = {job for job, task in drivers.items() if task.cancelled()}
            finally:
                renewing.cancel()
                for task in drivers.values():
                    task.cancel()
                await engine.lease_db.dispose()
                await pool.dispose()
                async with db.begin() as connection:
                    await connection.execute(
                        sa.text("UPDATE jobs SET engine_owner = NULL WHERE id = ANY(:ids)"),
                        {"ids": [let_go, taken]},
                    )
                for job in (let_go, taken):
                    await client.post(f"{API}/jobs/{job}/cancel")

    assert cancelled == {taken}
    lost = [r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage()]
    assert set(lost) == {f"lost the lease on {taken}; another engine drives it now"}
