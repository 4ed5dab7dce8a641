"""GET /metrics: the Prometheus text format, counters that move with real jobs, the token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from app.application import create_app
from app.settings import Settings
from tests.engine.conftest import busybox, submit, wait_for
from tests.factories import API, Keys, job_spec
from tests.ops.metrics_text import scrape
from tests.servers import lifespan_app, uvicorn_server
from tests.webhooks.conftest import Receiver, receiver_app


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with uvicorn_server(receiver_app(receiver)) as url:
        receiver.url = f"{url}/hook"
        yield receiver


class TestMetrics:
    async def test_counters_move_after_real_jobs(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        subscribed = await gateway.post(
            f"{API}/webhooks", json={"url": receiver.url, "events": ["job.completed"]}
        )
        assert subscribed.status_code == 201, subscribed.text
        before = await scrape(gateway)
        assert before.value("cortex_jobs", provider="local", status="completed") == 0
        assert before.value("cortex_job_submissions_total", provider="local") == 0

        completed = await submit(gateway, busybox("echo hi"))
        failed = await submit(gateway, busybox("echo bye; exit 3"))
        missing = await submit(gateway, busybox("true", image="cortex-test/not-there:1"))
        for job_id in (completed, failed, missing):
            await wait_for(gateway, job_id)
        await receiver.wait_for(1)

        after = await scrape(gateway)
        assert after.value("cortex_jobs", provider="local", status="completed") == 1
        assert after.value("cortex_jobs", provider="local", status="failed") == 2
        assert after.value("cortex_jobs", provider="local", status="pending") == 0
        assert after.value("cortex_job_submissions_total", provider="local") == 3
        assert after.value("cortex_job_failures_total", provider="local", reason="exit_code") == 1
        assert after.value("cortex_job_failures_total", provider="local", reason="image_pull") == 1
        assert after.value("cortex_engine_claim_lag_seconds_count") == 3
        assert after.value("cortex_engine_claim_lag_seconds_sum") < 3 * 5
        submits = {"provider": "local", "operation": "submit"}
        assert after.value("cortex_provider_calls_total", outcome="ok", **submits) == 2
        assert (
            after.value("cortex_provider_calls_total", outcome="image_pull_failed", **submits) == 1
        )
        # Every call is timed once; a submission the runtime fails transiently is tried again.
        submit_calls = after.value("cortex_provider_calls_total", **submits)
        assert submit_calls >= 3
        assert after.value("cortex_provider_call_duration_seconds_count", **submits) == submit_calls
        assert after.value("cortex_provider_calls_total", operation="status", outcome="ok") >= 2
        assert after.value("cortex_webhook_deliveries_total", outcome="succeeded") == 1
        assert after.value("cortex_webhook_deliveries_total", outcome="failed") == 0

    async def test_webhook_attempts_are_counted_by_outcome(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        subscribed = await gateway.post(
            f"{API}/webhooks", json={"url": receiver.url, "events": ["*"]}
        )
        assert subscribed.status_code == 201, subscribed.text
        endpoint = subscribed.json()["data"]["id"]
        receiver.script = [500]  # the first attempt fails, the retry (0.2 s later) succeeds

        assert (await gateway.post(f"{API}/webhooks/{endpoint}/test")).status_code in (200, 202)
        await receiver.wait_for(2)
        await asyncio.sleep(0.2)  # the second attempt's outcome is recorded after it answered

        scraped = await scrape(gateway)
        assert scraped.value("cortex_webhook_deliveries_total", outcome="retrying") == 1
        assert scraped.value("cortex_webhook_deliveries_total", outcome="succeeded") == 1
        assert scraped.value("cortex_webhook_deliveries_total", outcome="failed") == 0

    async def test_job_totals_are_the_databases_in_every_process(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        """Counts come from the database at scrape time: another process (here another app
        on the same database) reports jobs it never saw submitted."""
        for _ in range(2):
            assert (await client.post(f"{API}/jobs", json=job_spec())).status_code == 201

        async with lifespan_app(create_app(settings)) as other:
            transport = httpx.ASGITransport(app=other)
            async with httpx.AsyncClient(transport=transport, base_url="http://other") as peer:
                theirs = await scrape(peer)
        ours = await scrape(client)

        assert theirs.value("cortex_jobs", provider="local", status="pending") == 2
        assert ours.value("cortex_job_submissions_total", provider="local") == 2
        assert theirs.value("cortex_job_submissions_total", provider="local") == 0
        # Every status of every provider is there, at 0 when it has no job.
        assert theirs.has("cortex_jobs")
        assert theirs.value("cortex_jobs", provider="akash", status="running") == 0

    async def test_open_event_streams_are_counted_until_they_close(
        self, settings: Settings, keys: Keys
    ) -> None:
        key = await keys.create()
        async with (
            uvicorn_server(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client,
        ):
            job = (await client.post(f"{API}/jobs", json=job_spec())).json()["data"]
            assert (await scrape(client)).value("cortex_sse_streams_open") == 0
            follow = f"{API}/jobs/{job['id']}/logs?follow=true"
            async with client.stream("GET", follow) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                assert (await scrape(client)).value("cortex_sse_streams_open") == 1
            await asyncio.sleep(0.2)  # the server notices the client went away
            assert (await scrape(client)).value("cortex_sse_streams_open") == 0

    async def test_http_requests_are_counted_by_route_template_and_status(
        self, client: httpx.AsyncClient
    ) -> None:
        for job_id in ("job_0123456789abcdef", "job_fedcba9876543210"):
            assert (await client.get(f"{API}/jobs/{job_id}")).status_code == 404
        assert (await client.get(f"{API}/jobs")).status_code == 200
        assert (await client.get("/no/such/page")).status_code == 404

        scraped = await scrape(client)
        one_job = {"method": "GET", "route": f"{API}/jobs/{{job_id}}"}
        assert scraped.value("cortex_http_requests_total", status="404", **one_job) == 2
        jobs = {"method": "GET", "route": f"{API}/jobs", "status": "200"}
        assert scraped.value("cortex_http_requests_total", **jobs) == 1
        assert scraped.value("cortex_http_requests_total", route="unmatched", status="404") == 1
        assert scraped.value("cortex_http_request_duration_seconds_count", **one_job) == 2

    async def test_metrics_live_off_the_api_prefix(self, app_client: httpx.AsyncClient) -> None:
        assert (await app_client.get(f"{API}/metrics")).status_code == 404
        assert (await app_client.get("/metrics")).status_code == 200


class TestMetricsToken:
    @pytest.fixture
    async def protected(self, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
        settings = Settings(
            database_url=database_url, engine_enabled=False, metrics_token=SecretStr("s3cret")
        )
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
                yield c

    async def test_without_the_token_answers_401_in_the_error_envelope(
        self, protected: httpx.AsyncClient
    ) -> None:
        response = await protected.get("/metrics")
        assert response.status_code == 401
        body = response.json()
        assert body["success"] is False
        assert body["error"]["code"] == "UNAUTHORIZED"

    @pytest.mark.parametrize("header", ["Bearer wrong", "Basic czNjcmV0", "s3cret", "Bearer "])
    async def test_a_wrong_token_answers_401(
        self, protected: httpx.AsyncClient, header: str
    ) -> None:
        response = await protected.get("/metrics", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"

    async def test_the_token_opens_it(self, protected: httpx.AsyncClient) -> None:
        scraped = await scrape(protected, Authorization="Bearer s3cret")
        assert scraped.has("cortex_jobs")

    async def test_an_api_key_does_not_open_it(
        self, protected: httpx.AsyncClient, keys: Keys
    ) -> None:
        api_key = await keys.create(scope=["admin"])
        response = await protected.get("/metrics", headers={"Authorization": f"Bearer {api_key}"})
        assert response.status_code == 401
