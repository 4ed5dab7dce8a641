"""Crash safety: killed gateways, vanished containers, several engines on one database."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.application import create_app
from app.engine import repository
from tests.e2e.test_gateway_process import Gateway
from tests.engine.conftest import (
    busybox,
    containers_of,
    docker_socket,
    engine_settings,
    log_lines,
    submit,
    wait_for,
)
from tests.factories import API, Keys, job_spec, seed_jobs
from tests.servers import lifespan_app


@pytest.fixture
def gateway_env(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield dict(
        os.environ,
        DATABASE_URL=database_url,
        CORTEX_DATA_DIR=str(tmp_path / "unused"),
        CORTEX_ENGINE_LEASE_SECONDS="2",
        CORTEX_ENGINE_POLL_INTERVAL="0.2",
    )


def http_client(gateway: Gateway, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gateway.url.removesuffix(API), headers={"Authorization": f"Bearer {key}"}
    )


async def test_a_killed_gateway_s_job_finishes_under_the_next_with_every_line_once(
    gateway_env: dict[str, str], tmp_path: Path, keys: Keys
) -> None:
    key = await keys.create()
    first = Gateway(gateway_env, tmp_path / "first.log")
    try:
        first.wait_until_serving()
        async with http_client(first, key) as client:
            script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 0.4; done"
            job_id = await submit(client, busybox(script))
            await wait_for(client, job_id, {"running"})
            while len(await log_lines(client, job_id)) < 3:
                await asyncio.sleep(0.1)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.kill()

    second = Gateway(gateway_env, tmp_path / "second.log")
    try:
        second.wait_until_serving()
        async with http_client(second, key) as client:
            job = await wait_for(client, job_id, timeout=60)
            lines = await log_lines(client, job_id)
    finally:
        second.kill()

    assert job["status"] == "completed"
    assert lines == [f"line {i}" for i in range(1, 11)]
    assert [e["type"] for e in job["events"]].count("started") == 1


async def test_a_container_that_vanished_while_the_gateway_was_down_fails_as_lost(
    gateway_env: dict[str, str], tmp_path: Path, keys: Keys
) -> None:
    key = await keys.create()
    first = Gateway(gateway_env, tmp_path / "first.log")
    try:
        first.wait_until_serving()
        async with http_client(first, key) as client:
            job_id = await submit(client, busybox("sleep 60"))
            await wait_for(client, job_id, {"running"})
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.kill()
    [container] = await containers_of(job_id)
    async with httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=docker_socket()), base_url="http://docker"
    ) as docker:
        await docker.delete(f"/v1.41/containers/{container['Id']}", params={"force": "true"})

    second = Gateway(gateway_env, tmp_path / "second.log")
    try:
        second.wait_until_serving()
        async with http_client(second, key) as client:
            job = await wait_for(client, job_id, timeout=60)
    finally:
        second.kill()

    assert job["status"] == "failed"
    assert job["results"]["reason"] == "lost"


async def test_two_engines_never_drive_the_same_job(
    database_url: str, keys: Keys, db: AsyncEngine
) -> None:
    key = {"Authorization": f"Bearer {await keys.create()}"}
    apps = [create_app(engine_settings(database_url)) for _ in range(2)]
    async with lifespan_app(apps[0]) as one, lifespan_app(apps[1]) as two:
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gw", headers=key
            )
            for app in (one, two)
        ]
        job_ids = [
            await submit(clients[i % 2], busybox(f"echo job {i}; sleep 0.5")) for i in range(8)
        ]
        jobs = [await wait_for(clients[0], job_id) for job_id in job_ids]
        for client in clients:
            await client.aclose()

    for job in jobs:
        assert job["status"] == "completed", job
        # `provider` events say what a submit waits for (a retried runtime hiccup); each
        # transition happens once whatever they say.
        types = [event["type"] for event in job["events"] if event["type"] != "provider"]
        assert types == ["created", "scheduled", "started", "completed"], types
    async with db.connect() as connection:
        owners = await connection.execute(
            sa.text("SELECT count(*) FROM jobs WHERE engine_owner IS NOT NULL")
        )
        assert owners.scalar_one() == 0, "finished jobs are handed back"


async def test_concurrent_claims_are_disjoint(db: AsyncEngine, keys: Keys) -> None:
    await keys.create(account="alpha")
    await seed_jobs(db, "alpha", [{} for _ in range(20)])

    async def claim(owner: str) -> list[str]:
        async with database.transaction(db) as connection:
            claimed = await repository.claim(connection, owner, limit=15, lease_seconds=30)
        assert all(row["engine_owner"] == owner for row in claimed)
        return [row["id"] for row in claimed]

    first, second = await asyncio.gather(claim("a"), claim("b"))

    assert not set(first) & set(second)
    assert len(first) + len(second) == 20


async def test_an_unreachable_runtime_answers_503(
    database_url: str, keys: Keys, tmp_path: Path
) -> None:
    settings = engine_settings(database_url, docker_host=f"unix://{tmp_path}/nothing.sock")
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            response = await client.post(f"{API}/jobs", json=job_spec())
            listing = await client.get(f"{API}/jobs")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "PROVIDER_UNAVAILABLE"
    assert "nothing.sock" in error["message"]
    assert listing.json()["meta"]["pagination"]["total"] == 0
