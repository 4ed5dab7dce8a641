"""While a job waits, the gateway keeps its statusMessage current from what the network says;
once the workload runs the message is the workload's (null until it reports)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import wait_for
from tests.factories import API, Keys
from tests.fakes.akash import FakeAkash, running_fake
from tests.providers.akash.test_jobs import akash_job, akash_settings
from tests.providers.conformance.harness_akash import API_KEY
from tests.servers import lifespan_app


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkash]:
    # Three providers bid, 0.8 s apart, from 0.5 s after the deployment is created.
    async with running_fake(api_key=API_KEY, bid_delay=0.5, bid_spacing=0.8) as running:
        yield running


@pytest.fixture
async def gateway(
    database_url: str, keys: Keys, fake: FakeAkash
) -> AsyncIterator[httpx.AsyncClient]:
    # Bids are collected for 2.5 s after the first one: all three arrive within the window.
    settings = akash_settings(
        database_url, fake.console_url, akash_bid_window=2.5, progress_event_interval=0.5
    )
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


async def messages_until_running(client: httpx.AsyncClient, job_id: str) -> list[str | None]:
    """Each statusMessage the job showed, in order, until it ran."""
    seen: list[str | None] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
        if not seen or seen[-1] != job["statusMessage"]:
            seen.append(job["statusMessage"])
        if job["status"] not in ("pending", "scheduled"):
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job_id} never ran: {seen}")


class TestAkashWaitingForBids:
    async def test_the_message_counts_bids_as_they_arrive_then_clears_when_it_runs(
        self, gateway: httpx.AsyncClient
    ) -> None:
        response = await gateway.post(f"{API}/jobs", json=akash_job("sleep 2"))
        assert response.status_code == 201, response.text
        job_id = response.json()["data"]["id"]

        seen = await messages_until_running(gateway, job_id)

        bids = [m for m in seen if m and m.startswith("waiting for bids")]
        assert bids[:4] == [
            "waiting for bids: none so far",
            "waiting for bids: 1 so far, cheapest 900 uact/block",
            "waiting for bids: 2 so far, cheapest 900 uact/block",
            "waiting for bids: 3 so far, cheapest 900 uact/block",
        ], seen
        assert seen[-1] is None, "a running job that has not reported has no message"
        job = (await gateway.get(f"{API}/jobs/{job_id}")).json()["data"]
        assert "took the bid of akash1provider0cheap" in " ".join(
            str(e["message"]) for e in job["events"]
        )
        events = (await gateway.get(f"{API}/jobs/{job_id}/events")).json()["data"]["events"]
        announced = [e["data"]["statusMessage"] for e in events if e["type"] == "progress"]
        assert announced[0] == "waiting for bids: none so far"
        assert announced[-1].startswith(("waiting for bids: 3", "starting on akash1")), announced
        assert (await wait_for(gateway, job_id))["status"] == "completed"
