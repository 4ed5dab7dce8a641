"""A gateway with its engine running, on the real container runtime."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.application import create_app
from app.settings import Settings
from tests.factories import API, Keys, job_spec
from tests.servers import lifespan_app

TERMINAL = {"completed", "failed", "cancelled"}


def engine_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "engine_enabled": True,
        "engine_poll_interval": 0.2,
        "engine_lease_seconds": 3.0,
        "metrics_interval": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def gateway(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a gateway whose engine runs jobs on the local container runtime."""
    async with lifespan_app(create_app(engine_settings(database_url))) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


def busybox(script: str, **overrides: Any) -> dict[str, Any]:
    return job_spec(command=["sh", "-c", script], **overrides)


async def submit(client: httpx.AsyncClient, spec: dict[str, Any]) -> str:
    response = await client.post(f"{API}/jobs", json=spec)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["data"]["id"]
    return job_id


async def wait_for(
    client: httpx.AsyncClient, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"{job_id} still {job['status']} after {timeout}s: {job}")
        await asyncio.sleep(0.1)


async def log_lines(client: httpx.AsyncClient, job_id: str) -> list[str]:
    response = await client.get(f"{API}/jobs/{job_id}/logs")
    assert response.status_code == 200, response.text
    return [entry["line"] for entry in response.json()["data"]["logs"]]


def docker_socket() -> str:
    return os.environ["DOCKER_HOST"].removeprefix("unix://")


async def containers_of(job_id: str) -> list[dict[str, Any]]:
    transport = httpx.AsyncHTTPTransport(uds=docker_socket())
    async with httpx.AsyncClient(transport=transport, base_url="http://docker") as docker:
        response = await docker.get(
            "/v1.41/containers/json",
            params={"all": "true", "filters": f'{{"label": ["cortex.job={job_id}"]}}'},
        )
    found: list[dict[str, Any]] = response.json()
    return found


async def cancelled_and_removed(client: httpx.AsyncClient, job_id: str) -> None:
    """Cancel a job a test no longer needs and wait until its container is gone, so that a
    test run leaves nothing behind in the container runtime."""
    await client.post(f"{API}/jobs/{job_id}/cancel")
    await wait_for(client, job_id)
    assert await removed(job_id)


async def removed(job_id: str, timeout: float = 10.0) -> bool:
    """Whether the job's containers are gone within `timeout` seconds. The engine records a
    job's end first and removes its container right after (removal is never urgent)."""
    deadline = time.monotonic() + timeout
    while await containers_of(job_id):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True
