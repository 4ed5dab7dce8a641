"""Golem jobs through the gateway's API and engine, against the fake yagna."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import engine_settings, log_lines, submit, wait_for
from tests.factories import API, Keys
from tests.fakes.golem import APP_KEY, RunningFake, running_fake
from tests.providers.conformance.harness_golem import fast_timing
from tests.servers import lifespan_app


def golem_job(script: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "provider": "golem",
        "image": "cortex/busybox:1",
        "command": ["/bin/sh", "-c", script],
        "cpu": 500,
        "memory": "64Mi",
        "storage": "1Gi",
        "duration": 60,
    }
    spec.update(overrides)
    return spec


@pytest.fixture
async def fake() -> AsyncIterator[RunningFake]:
    async with running_fake(fast_timing()) as running:
        yield running


async def _gateway(
    database_url: str, keys: Keys, fake: RunningFake, **golem: Any
) -> AsyncIterator[httpx.AsyncClient]:
    options = {
        "golem_api_url": fake.url,
        "golem_registry_url": fake.url,
        "golem_app_key": APP_KEY,
        "golem_poll_interval": 0.05,
        **golem,
    }
    async with lifespan_app(create_app(engine_settings(database_url, **options))) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


@pytest.fixture
async def gateway(
    database_url: str, keys: Keys, fake: RunningFake
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _gateway(database_url, keys, fake):
        yield client


async def until_released(fake: RunningFake, job_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while fake.yagna.held(job_id):
        assert time.monotonic() < deadline, fake.yagna.held(job_id)
        await asyncio.sleep(0.1)


class TestRunGolemJob:
    async def test_a_job_that_exits_3_fails_with_code_3_reason_exit_code_and_every_line(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        script = "for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done; echo oops >&2; exit 3"
        job_id = await submit(gateway, golem_job(script))
        job = await wait_for(gateway, job_id, timeout=60)

        assert job["status"] == "failed"
        assert job["results"]["exitCode"] == 3
        assert job["results"]["reason"] == "exit_code"
        assert await log_lines(gateway, job_id) == [*(f"line {i}" for i in range(1, 6)), "oops"]
        # `progress` events: the statusMessage of each placement step (looking for offers...).
        types = [event["type"] for event in job["events"] if event["type"] != "progress"]
        assert types[:3] == ["created", "scheduled", "provider"]
        assert "started" in types and types[-1] == "failed"
        notes = " ".join(e["message"] or "" for e in job["events"] if e["type"] == "provider")
        assert "Agreement approved by steady" in notes
        await until_released(fake, job_id)

    async def test_a_job_that_exits_0_completes(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        job_id = await submit(gateway, golem_job("echo fine"))
        job = await wait_for(gateway, job_id, timeout=60)
        assert (job["status"], job["results"]["exitCode"]) == ("completed", 0)
        assert await log_lines(gateway, job_id) == ["fine"]
        await until_released(fake, job_id)
        invoices = list(fake.yagna.invoices.values())
        assert [invoice["status"] for invoice in invoices] == ["ACCEPTED"]

    async def test_cost_is_kept_in_glm_and_usd_at_the_agreed_price(
        self, gateway: httpx.AsyncClient
    ) -> None:
        job_id = await submit(gateway, golem_job("sleep 1", duration=600))
        job = await wait_for(gateway, job_id, timeout=60)
        cost = job["cost"]
        native = cost["native"]
        assert (native["denom"], native["unit"]) == ("GLM", "hour")
        # steady's worst case for 600 s on one thread, start price included, per hour.
        hourly = (0.001 + (0.00002 + 0.00005) * 600) * 3600 / 600
        assert float(native["price"]) == pytest.approx(hourly)
        assert float(native["projected"]) == pytest.approx(hourly / 6, abs=1e-6)
        assert cost["projected"] == pytest.approx(hourly / 6 * 0.25, abs=1e-6)
        assert 0 < float(native["amount"]) < float(native["projected"])
        assert cost["current"] == pytest.approx(float(native["amount"]) * 0.25, abs=1e-6)

    async def test_cancel_leaves_nothing_open_on_the_daemon(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        job_id = await submit(gateway, golem_job("echo started; sleep 600"))
        await wait_for(gateway, job_id, {"running"}, timeout=60)
        response = await gateway.post(f"{API}/jobs/{job_id}/cancel")
        assert response.status_code == 200, response.text
        job = await wait_for(gateway, job_id, timeout=30)
        assert job["status"] == "cancelled"
        await until_released(fake, job_id)
        summary = fake.yagna.summary()
        assert summary["demands"] == [] and summary["allocations"] == []
        assert set(summary["agreements"].values()) == {"Terminated"}
        assert set(summary["activities"].values()) == {"Terminated"}

    async def test_a_job_past_its_duration_is_stopped_and_fails_with_timeout(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        job_id = await submit(gateway, golem_job("echo begun; sleep 600", duration=2))
        job = await wait_for(gateway, job_id, timeout=60)
        assert (job["status"], job["results"]["reason"]) == ("failed", "timeout")
        assert await log_lines(gateway, job_id) == ["begun"]
        await until_released(fake, job_id)
        assert set(fake.yagna.summary()["activities"].values()) == {"Terminated"}

    async def test_no_acceptable_offer_fails_with_no_offers(
        self, database_url: str, keys: Keys, fake: RunningFake
    ) -> None:
        async for client in _gateway(database_url, keys, fake, golem_budget=0.000001):
            job_id = await submit(client, golem_job("true"))
            job = await wait_for(client, job_id, timeout=60)
            assert (job["status"], job["results"]["reason"]) == ("failed", "no_offers")
            assert job["startedAt"] is None
            await until_released(fake, job_id)

    async def test_a_provider_that_vanishes_mid_run_fails_the_job_as_lost(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        job_id = await submit(gateway, golem_job("echo here; sleep 600"))
        await wait_for(gateway, job_id, {"running"}, timeout=60)
        await fake.yagna.vanish(fake.yagna.provider_named("steady"))
        job = await wait_for(gateway, job_id, timeout=60)
        assert (job["status"], job["results"]["reason"]) == ("failed", "lost")
        assert "left the network" in job["results"]["message"]
        await until_released(fake, job_id)

    async def test_an_image_not_on_the_registry_fails_with_image_pull(
        self, gateway: httpx.AsyncClient
    ) -> None:
        job_id = await submit(gateway, golem_job("true", image="nginx:latest"))
        job = await wait_for(gateway, job_id, timeout=30)
        assert (job["status"], job["results"]["reason"]) == ("failed", "image_pull")
        assert "gvmkit-build" in job["results"]["message"]


class TestRefusedAtSubmission:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"ports": [{"port": 8080, "expose": True}]}, "ports"),
            ({"command": None, "args": ["x"]}, "command"),
            ({"volumes": [{"name": "data", "mountPath": "/data", "readOnly": True}]}, "volumes"),
        ],
    )
    async def test_what_golem_cannot_run_answers_400_naming_the_field(
        self, gateway: httpx.AsyncClient, overrides: dict[str, Any], field: str
    ) -> None:
        spec = {k: v for k, v in golem_job("true", **overrides).items() if v is not None}
        response = await gateway.post(f"{API}/jobs", json=spec)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert field in [detail["field"] for detail in error["details"]]
        assert (await gateway.get(f"{API}/jobs")).json()["data"] == []

    async def test_without_an_app_key_submissions_answer_503(
        self, database_url: str, keys: Keys, fake: RunningFake
    ) -> None:
        async for client in _gateway(database_url, keys, fake, golem_app_key=None):
            response = await client.post(f"{API}/jobs", json=golem_job("true"))
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
            assert "CORTEX_GOLEM_APP_KEY" in response.json()["error"]["message"]
