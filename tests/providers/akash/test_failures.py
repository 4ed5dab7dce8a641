"""Akash failure paths through the gateway, against the fake Console: a lease the chain ends
for lack of funds, a lease the provider reclaims, a close Console fails. Each job ends with a
clear reason and nothing is left billing on the network."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import submit, wait_for
from tests.factories import Keys
from tests.fakes.akash import FakeAkash, running_fake
from tests.providers.akash.test_jobs import (
    akash_job,
    akash_settings,
    events,
    wait_for_closed,
)
from tests.providers.conformance.harness_akash import API_KEY
from tests.servers import lifespan_app


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkash]:
    async with running_fake(api_key=API_KEY, bid_delay=0.3, start_delay=0.2) as running:
        yield running


@pytest.fixture
async def gateway(
    database_url: str,
    keys: Keys,
    fake: FakeAkash,
) -> AsyncIterator[httpx.AsyncClient]:
    # Console retries quickly, so a failing close is tried again within the test's time.
    settings = akash_settings(database_url, fake.console_url, akash_retry_delay=0.05)
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


async def running_job(gateway: httpx.AsyncClient, fake: FakeAkash) -> tuple[str, str]:
    job_id = await submit(gateway, akash_job("echo up; sleep 600"))
    await wait_for(gateway, job_id, {"running"}, timeout=20)
    [deployment] = [d for d in fake.network.deployments.values() if d.job_id == job_id]
    return job_id, deployment.dseq


class TestLeaseEnded:
    async def test_a_lease_out_of_funds_fails_the_job_and_the_deployment_is_closed(
        self,
        gateway: httpx.AsyncClient,
        fake: FakeAkash,
    ) -> None:
        job_id, dseq = await running_job(gateway, fake)
        await fake.network.end_lease(fake.network.deployments[dseq], "insufficient_funds")
        job = await wait_for(gateway, job_id, timeout=20)
        assert (job["status"], job["results"]["reason"]) == ("failed", "provider_error")
        message = job["results"]["message"]
        assert f"escrow of deployment {dseq} ran out of funds" in message, message
        assert "top up the Console account" in message
        await wait_for_closed(fake, dseq)
        assert fake.network.held(job_id) == []

    async def test_a_lease_the_provider_reclaims_fails_the_job_and_stops_the_workload(
        self,
        gateway: httpx.AsyncClient,
        fake: FakeAkash,
    ) -> None:
        job_id, dseq = await running_job(gateway, fake)
        deployment = fake.network.deployments[dseq]
        await fake.network.end_lease(deployment, "reclaiming")
        assert deployment.workload is not None and deployment.workload.alive
        job = await wait_for(gateway, job_id, timeout=20)
        assert (job["status"], job["results"]["reason"]) == ("failed", "provider_error")
        message = job["results"]["message"]
        assert f"taking back its lease on deployment {dseq}" in message, message
        await wait_for_closed(fake, dseq)
        assert fake.network.held(job_id) == []


class TestFailedClose:
    async def test_a_close_answered_500_is_retried_until_the_deployment_is_closed(
        self,
        gateway: httpx.AsyncClient,
        fake: FakeAkash,
    ) -> None:
        # More failures than one call's attempts: the engine's release has to come back.
        fake.network.failing_closes = 6
        job_id = await submit(gateway, akash_job("echo done"))
        job = await wait_for(gateway, job_id, timeout=20)
        assert job["status"] == "completed", events(job)
        [deployment] = [d for d in fake.network.deployments.values() if d.job_id == job_id]
        await wait_for_closed(fake, deployment.dseq, timeout=20)
        assert fake.network.failing_closes == 0
        assert fake.console.requests["DELETE /v1/deployments/{dseq}"] == 7
        assert fake.network.held(job_id) == []
        job = await wait_for(gateway, job_id)
        assert job["status"] == "completed"

    async def test_a_failed_job_whose_close_fails_still_ends_and_is_closed_later(
        self,
        gateway: httpx.AsyncClient,
        fake: FakeAkash,
    ) -> None:
        job_id, dseq = await running_job(gateway, fake)
        fake.network.failing_closes = 6
        await fake.network.end_lease(fake.network.deployments[dseq], "insufficient_funds")
        job = await wait_for(gateway, job_id, timeout=20)
        assert (job["status"], job["results"]["reason"]) == ("failed", "provider_error")
        await wait_for_closed(fake, dseq, timeout=20)
        assert fake.network.held(job_id) == []
