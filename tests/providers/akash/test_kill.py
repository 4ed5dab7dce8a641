"""`kill -9` of a gateway driving an Akash job, at each step: a second gateway process takes
the job over where it was, with one deployment and every log line once."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_gateway_process import Gateway
from tests.factories import Keys
from tests.fakes.akash import FakeAkash, running_fake
from tests.providers.conformance.harness_akash import API_KEY

LINES = [f"line {number}" for number in range(1, 9)]
SCRIPT = "for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.5; done; exit 3"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkash]:
    async with running_fake(api_key=API_KEY, bid_delay=1.5, start_delay=0.5) as running:
        yield running


def gateway_env(database_url: str, console_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")}
    env.update(
        CORTEX_DATABASE_URL=database_url,
        CORTEX_ENGINE_POLL_INTERVAL="0.2",
        CORTEX_ENGINE_LEASE_SECONDS="2",
        CORTEX_WEBHOOKS_ENABLED="false",
        CORTEX_AKASH_API_KEY=API_KEY,
        CORTEX_AKASH_API_URL=console_url,
        CORTEX_AKASH_POLL_INTERVAL="0.3",
    )
    return env


async def serving(gateway: Gateway) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            assert gateway.process.poll() is None, gateway.text()
            try:
                if (await client.get(f"{gateway.url}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"the gateway did not start:\n{gateway.text()}")


async def job_when(
    client: httpx.AsyncClient, url: str, job_id: str, done: Any, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = (await client.get(f"{url}/jobs/{job_id}")).json()["data"]
        if done(job):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("step", ["bidding", "running"])
async def test_a_killed_gateways_akash_job_is_carried_on_by_another(
    step: str, database_url: str, keys: Keys, fake: FakeAkash, tmp_path: Path
) -> None:
    env = gateway_env(database_url, fake.console_url)
    headers = {"Authorization": f"Bearer {await keys.create()}"}
    first = Gateway(env, tmp_path / "first.log")
    second: Gateway | None = None
    try:
        await serving(first)
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            spec = {
                "provider": "akash",
                "image": "busybox:1.36",
                "cpu": 500,
                "memory": "64Mi",
                "storage": "1Gi",
                "duration": 300,
                "command": ["sh", "-c", SCRIPT],
            }
            created = await client.post(f"{first.url}/jobs", json=spec)
            assert created.status_code == 201, created.text
            job_id = created.json()["data"]["id"]
            if step == "bidding":
                await job_when(client, first.url, job_id, lambda job: job["status"] == "scheduled")
                assert not any(d.lease for d in fake.network.deployments.values())
            else:
                await job_when(
                    client,
                    first.url,
                    job_id,
                    lambda job: job["status"] == "running",
                )
                await asyncio.sleep(1.0)  # some lines stored, more to come
            first.kill()

            second = Gateway(env, tmp_path / "second.log")
            await serving(second)
            job = await job_when(
                client,
                second.url,
                job_id,
                lambda job: job["status"] in ("completed", "failed", "cancelled"),
            )
            logs = (await client.get(f"{second.url}/jobs/{job_id}/logs")).json()["data"]
        assert (job["status"], job["results"]["exitCode"]) == ("failed", 3), job
        assert [entry["line"] for entry in logs["logs"]] == LINES
        deployments = [d for d in fake.network.deployments.values() if d.job_id == job_id]
        assert len(deployments) == 1
        for _ in range(50):
            if deployments[0].state == "closed":
                break
            await asyncio.sleep(0.1)
        assert deployments[0].state == "closed"
    finally:
        first.kill()
        if second is not None:
            second.interrupt()
