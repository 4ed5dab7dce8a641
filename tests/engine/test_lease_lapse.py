"""A lease that lapses while its own engine still drives the job (a stalled process)."""

from __future__ import annotations

import asyncio
import time

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application import create_app
from tests.engine.conftest import busybox, engine_settings, submit, wait_for
from tests.factories import API, Keys
from tests.servers import lifespan_app

LINES = 16
LAPSES = 3


async def lapse_lease(db: AsyncEngine, job_id: str) -> str:
    """Let the job's lease run out now, as if its engine had stalled past the renewal;
    returns the engine that held it."""
    async with db.begin() as connection:
        owner = await connection.scalar(
            sa.text(
                "UPDATE jobs SET lease_expires_at = now() - interval '1 second'"
                " WHERE id = :id RETURNING engine_owner"
            ),
            {"id": job_id},
        )
    assert owner is not None, "the job is held by an engine while it runs"
    return str(owner)


async def wait_until_reclaimed(db: AsyncEngine, job_id: str, owner: str) -> None:
    """Until the same engine's claim took the lapsed job back (a fresh lease)."""
    deadline = time.monotonic() + 5
    while True:
        async with db.connect() as connection:
            held = await connection.scalar(
                sa.text(
                    "SELECT engine_owner = :owner AND lease_expires_at > now()"
                    " FROM jobs WHERE id = :id"
                ),
                {"id": job_id, "owner": owner},
            )
        if held:
            return
        assert time.monotonic() < deadline, "the engine never claimed its lapsed job back"
        await asyncio.sleep(0.05)


async def test_a_job_whose_lease_lapsed_under_its_own_engine_keeps_one_driver(
    database_url: str, db: AsyncEngine, keys: Keys
) -> None:
    # A lease far longer than the test: the renewal never comes first, so every lapse below
    # is seen by the engine's next claim (every 0.2 s), which takes back its own job.
    settings = engine_settings(database_url, engine_lease_seconds=60.0)
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            script = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.25; done"
            job_id = await submit(client, busybox(script))
            await wait_for(client, job_id, {"running"})

            for _ in range(LAPSES):
                owner = await lapse_lease(db, job_id)
                await wait_until_reclaimed(db, job_id, owner)
                await asyncio.sleep(0.3)  # a line or two printed under the reclaimed lease

            job = await wait_for(client, job_id, timeout=30)
            response = await client.get(f"{API}/jobs/{job_id}/logs")

    assert job["status"] == "completed", job
    # Every line exactly once, numbered without gaps: a second driver for the job would
    # store each line it also read a second time.
    logs = response.json()["data"]["logs"]
    assert [entry["line"] for entry in logs] == [f"line {i}" for i in range(1, LINES + 1)]
    assert [entry["seq"] for entry in logs] == list(range(1, LINES + 1))
    types = [event["type"] for event in job["events"]]
    assert types == ["created", "scheduled", "started", "completed"], types
