"""Akash jobs through the gateway: the Jobs API and the engine, against the fake Console."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import engine_settings, log_lines, submit, wait_for
from tests.factories import API, Keys, job_spec
from tests.fakes.akash import FakeAkash, running_fake
from tests.providers.conformance.harness_akash import API_KEY
from tests.servers import lifespan_app


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkash]:
    async with running_fake(api_key=API_KEY, bid_delay=0.3, start_delay=0.2) as running:
        yield running


def akash_settings(database_url: str, console_url: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "akash_api_key": API_KEY,
        "akash_api_url": console_url,
        "akash_poll_interval": 0.2,
        "akash_bid_timeout": 10.0,
    }
    values.update(overrides)
    return engine_settings(database_url, **values)


@pytest.fixture
async def gateway(
    database_url: str, keys: Keys, fake: FakeAkash
) -> AsyncIterator[httpx.AsyncClient]:
    settings = akash_settings(database_url, fake.console_url)
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


def akash_job(script: str, **overrides: Any) -> dict[str, Any]:
    return job_spec(
        provider="akash", image="busybox:1.36", command=["sh", "-c", script], **overrides
    )


def events(job: dict[str, Any]) -> list[str]:
    return [f"{event['type']}: {event['message']}" for event in job["events"]]


class TestAkashJobs:
    async def test_a_job_runs_to_completion_with_lease_url_logs_and_cost(
        self, gateway: httpx.AsyncClient, fake: FakeAkash
    ) -> None:
        job_id = await submit(
            gateway,
            akash_job(
                "echo hello from akash; sleep 1; echo bye",
                ports=[{"port": 8080, "expose": True}],
            ),
        )
        running = await wait_for(gateway, job_id, {"running", "completed", "failed"})
        assert running["status"] == "running", running
        [deployment] = [d for d in fake.network.deployments.values() if d.job_id == job_id]
        assert running["endpoints"] == [
            {"port": 8080, "url": f"http://{deployment.dseq}-app.ingress.00000000.fake-akash.test"}
        ]
        job = await wait_for(gateway, job_id)
        assert job["status"] == "completed", job
        assert job["results"]["exitCode"] == 0
        timeline = events(job)
        assert any(
            f"Deployment {deployment.dseq}: took the bid of akash1provider0cheap" in line
            for line in timeline
        ), timeline
        assert any(f"Deployment {deployment.dseq} created" in line for line in timeline)
        assert any(
            f"Lease on deployment {deployment.dseq} active; the service is ready (http://" in line
            for line in timeline
        ), timeline
        assert await log_lines(gateway, job_id) == ["hello from akash", "bye"]
        native = job["cost"]["native"]
        assert (native["denom"], native["unit"]) == ("uact", "block")
        assert float(native["price"]) == 900.0
        assert job["cost"]["projected"] == pytest.approx(900e-6 * 3600 / 6.098 / 60, abs=1e-6)
        assert float(native["amount"]) > 0 and job["cost"]["current"] > 0
        await wait_for_closed(fake, deployment.dseq)

    async def test_a_failing_command_fails_with_its_exit_code(
        self, gateway: httpx.AsyncClient, fake: FakeAkash
    ) -> None:
        job_id = await submit(gateway, akash_job("echo oops; exit 7"))
        job = await wait_for(gateway, job_id)
        assert (job["status"], job["results"]["exitCode"]) == ("failed", 7)
        assert job["results"]["reason"] == "exit_code"
        assert await log_lines(gateway, job_id) == ["oops"]

    async def test_cancel_closes_the_deployment(
        self, gateway: httpx.AsyncClient, fake: FakeAkash
    ) -> None:
        job_id = await submit(gateway, akash_job("echo up; sleep 600"))
        await wait_for(gateway, job_id, {"running"})
        response = await gateway.post(f"{API}/jobs/{job_id}/cancel")
        assert response.status_code == 200, response.text
        job = await wait_for(gateway, job_id, {"cancelled"})
        assert job["status"] == "cancelled"
        [deployment] = [d for d in fake.network.deployments.values() if d.job_id == job_id]
        await wait_for_closed(fake, deployment.dseq)
        assert fake.network.held(job_id) == []

    async def test_no_bids_fails_with_no_bids_and_leaves_nothing_open(
        self, database_url: str, keys: Keys, fake: FakeAkash
    ) -> None:
        settings = akash_settings(
            database_url, fake.console_url, akash_max_price=100, akash_bid_timeout=1.0
        )
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create()}"
                job_id = await submit(client, akash_job("echo never"))
                job = await wait_for(client, job_id)
        assert (job["status"], job["results"]["reason"]) == ("failed", "no_bids")
        assert "CORTEX_AKASH_MAX_PRICE" in job["results"]["message"]
        assert fake.network.held(job_id) == []

    async def test_a_refused_bids_listing_fails_the_job_naming_the_refusal(
        self, gateway: httpx.AsyncClient, fake: FakeAkash
    ) -> None:
        fake.network.refuse_bids = True
        job_id = await submit(gateway, akash_job("echo never"))
        job = await wait_for(gateway, job_id, timeout=15.0)
        assert (job["status"], job["results"]["reason"]) == ("failed", "provider_error")
        message = job["results"]["message"]
        assert "akash refused GET /v1/bids (HTTP 400)" in message, message
        assert "dseq filter is not supported" in message
        [deployment] = [d for d in fake.network.deployments.values() if d.job_id == job_id]
        await wait_for_closed(fake, deployment.dseq)

    async def test_volumes_are_refused_at_submission_naming_the_field(
        self, gateway: httpx.AsyncClient
    ) -> None:
        response = await gateway.post(
            f"{API}/jobs",
            json=akash_job("true", volumes=[{"name": "data", "mountPath": "/data"}]),
        )
        assert response.status_code == 400
        assert [d["field"] for d in response.json()["error"]["details"]] == ["volumes"]

    async def test_a_gateway_restart_carries_on_with_the_same_deployment(
        self, database_url: str, keys: Keys, fake: FakeAkash
    ) -> None:
        settings = akash_settings(database_url, fake.console_url)
        secret = await keys.create()
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {secret}"
                job_id = await submit(client, akash_job("echo one; sleep 2; echo two"))
                await wait_for(client, job_id, {"scheduled", "running"})
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {secret}"
                job = await wait_for(client, job_id)
                lines = await log_lines(client, job_id)
        assert job["status"] == "completed", job
        assert lines == ["one", "two"]
        assert len([d for d in fake.network.deployments.values() if d.job_id == job_id]) == 1


class TestAkashNotConfigured:
    async def test_submissions_answer_503_and_the_provider_says_not_configured(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(f"{API}/jobs", json=akash_job("true"))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
        assert "CORTEX_AKASH_API_KEY" in response.json()["error"]["message"]
        provider = (await client.get(f"{API}/providers/akash")).json()["data"]
        assert provider["health"]["status"] == "not_configured"
        assert provider["capabilities"]["volumes"] is False


async def wait_for_closed(fake: FakeAkash, dseq: str, timeout: float = 10.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while fake.network.deployments[dseq].state != "closed":
        assert time.monotonic() < deadline, f"deployment {dseq} still open"
        await asyncio.sleep(0.1)
