"""The engine's retries of a submit the provider cannot take now: backoff that grows, a
timeline that says what the job waits for, and `provider_unavailable` after the submit
timeout. Against the fake Console answering 503."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import submit, wait_for
from tests.factories import API, Keys
from tests.fakes.akash import FakeAkash, running_fake
from tests.providers.akash.test_jobs import akash_job, akash_settings
from tests.providers.conformance.harness_akash import API_KEY
from tests.servers import lifespan_app

OUTAGE = 10**6  # 503s until the test ends the outage


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkash]:
    async with running_fake(api_key=API_KEY, bid_delay=0.2, start_delay=0.1) as running:
        yield running


async def gateway(database_url: str, keys: Keys, fake: FakeAkash, **settings: Any) -> Any:
    values = {"akash_retry_delay": 0.01, **settings}
    return create_app(akash_settings(database_url, fake.console_url, **values))


async def submit_during_outage(client: httpx.AsyncClient, fake: FakeAkash) -> str:
    # Console answered once: the gateway admits jobs on that health for a while.
    assert (await client.get(f"{API}/providers/akash")).status_code == 200
    fake.network.failing = OUTAGE
    return await submit(client, akash_job("echo up; sleep 0.3"))


def engine_attempts(fake: FakeAkash) -> list[float]:
    """When each of the engine's submit attempts began: the adapter's own quick retries of
    one attempt (10 ms apart here) are one attempt."""
    times = [at for route, at in fake.console.timeline if route == "GET /v1/deployments"]
    starts = times[:1]
    for before, at in itertools.pairwise(times):
        if at - before > 0.2:
            starts.append(at)
    return starts


class TestSubmitRetries:
    async def test_backoff_grows_and_the_job_fails_provider_unavailable_after_the_timeout(
        self, database_url: str, keys: Keys, fake: FakeAkash
    ) -> None:
        app = await gateway(database_url, keys, fake, engine_submit_timeout=5.0)
        async with lifespan_app(app) as running:
            transport = httpx.ASGITransport(app=running, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create()}"
                job_id = await submit_during_outage(client, fake)
                job = await wait_for(client, job_id, timeout=30)
        assert job["status"] == "failed", job
        assert job["results"]["reason"] == "provider_unavailable"
        assert "akash stayed unavailable" in job["results"]["message"]
        starts = engine_attempts(fake)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert len(gaps) >= 3, gaps
        # Each wait about twice the one before (with jitter of a fifth either way).
        assert gaps[1] > gaps[0] * 1.3 and gaps[2] > gaps[1] * 1.3, gaps
        waiting = [e["message"] for e in job["events"] if e["type"] == "provider"]
        assert waiting[0].startswith("Waiting for akash: Console answered 503"), waiting
        assert "retry 1 in" in waiting[0] and "retry 2 in" in waiting[1], waiting
        assert not fake.network.deployments

    async def test_a_network_back_before_the_timeout_lets_the_job_run(
        self, database_url: str, keys: Keys, fake: FakeAkash
    ) -> None:
        app = await gateway(database_url, keys, fake, engine_submit_timeout=60.0)
        async with lifespan_app(app) as running:
            transport = httpx.ASGITransport(app=running, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create()}"
                job_id = await submit_during_outage(client, fake)
                await _until_waiting(client, job_id, attempts=2)
                fake.network.failing = 0
                job = await wait_for(client, job_id, timeout=60)
        assert job["status"] == "completed", job
        assert len(fake.network.deployments) == 1


async def _until_waiting(client: httpx.AsyncClient, job_id: str, *, attempts: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
        if sum(1 for e in job["events"] if e["type"] == "provider") >= attempts:
            assert job["status"] == "pending", job
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{job_id} never waited {attempts} times")
