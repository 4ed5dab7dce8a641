"""The engine runs a batch's jobs as real containers, never more than `concurrency` at once,
starting the next as one ends; cancelling a batch stops what runs and starts nothing more."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import busybox, containers_of, engine_settings
from tests.factories import API, Keys
from tests.servers import lifespan_app

BATCH = f"{API}/jobs/batch"
ACTIVE = ("scheduled", "running", "cancelling")


@pytest.fixture
async def gateway(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    async with lifespan_app(create_app(engine_settings(database_url))) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


async def submit_batch(
    client: httpx.AsyncClient, jobs: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    response = await client.post(BATCH, json={"jobs": jobs, "concurrency": concurrency})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def follow_batch(
    client: httpx.AsyncClient, batch_id: str, until: set[str], timeout: float = 90
) -> tuple[dict[str, Any], int]:
    """Poll the batch until its status is in `until`; also returns the most jobs seen
    holding a turn (scheduled, running or cancelling) at one poll."""
    deadline = time.monotonic() + timeout
    most = 0
    while True:
        batch: dict[str, Any] = (await client.get(f"{BATCH}/{batch_id}")).json()["data"]
        most = max(most, sum(batch["counts"][status] for status in ACTIVE))
        if batch["status"] in until:
            return batch, most
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch['status']}: {batch['counts']}")
        await asyncio.sleep(0.05)


async def jobs_of(client: httpx.AsyncClient, job_ids: list[str]) -> list[dict[str, Any]]:
    return [(await client.get(f"{API}/jobs/{job_id}")).json()["data"] for job_id in job_ids]


def turn(job: dict[str, Any]) -> tuple[datetime, datetime]:
    """From its container's start until the job ended."""
    return datetime.fromisoformat(job["startedAt"]), datetime.fromisoformat(job["endedAt"])


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    # At equal times an end comes before a start: a turn handed over is not an overlap.
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


class TestBatchConcurrency:
    async def test_never_more_than_concurrency_jobs_run_at_once(
        self, gateway: httpx.AsyncClient
    ) -> None:
        jobs = [busybox("sleep 1") for _ in range(5)]
        jobs.insert(2, busybox("exit 3"))

        data = await submit_batch(gateway, jobs, concurrency=2)
        batch, most_seen = await follow_batch(gateway, data["batchId"], {"finished"})

        assert batch["counts"]["completed"] == 5 and batch["counts"]["failed"] == 1
        assert most_seen <= 2
        finished = await jobs_of(gateway, data["jobIds"])
        turns = [turn(job) for job in finished]
        assert most_at_once(turns) == 2, "two at a time: never more, and not one by one"
        # Turns go in the request's order: the first two jobs take the first two.
        by_start = sorted(range(len(turns)), key=lambda index: turns[index][0])
        assert set(by_start[:2]) == {0, 1}

    async def test_two_engines_share_one_batchs_turns(
        self, gateway: httpx.AsyncClient, database_url: str
    ) -> None:
        async with lifespan_app(create_app(engine_settings(database_url))):
            data = await submit_batch(gateway, [busybox("sleep 0.5") for _ in range(4)], 1)
            await follow_batch(gateway, data["batchId"], {"finished"})

        finished = await jobs_of(gateway, data["jobIds"])
        assert {job["status"] for job in finished} == {"completed"}
        assert most_at_once([turn(job) for job in finished]) == 1

    async def test_cancelling_a_batch_stops_its_jobs_and_starts_no_more(
        self, gateway: httpx.AsyncClient
    ) -> None:
        data = await submit_batch(gateway, [busybox("sleep 60") for _ in range(4)], 2)
        deadline = time.monotonic() + 60
        while True:
            batch = (await gateway.get(f"{BATCH}/{data['batchId']}")).json()["data"]
            if batch["counts"]["running"] == 2:
                break
            assert time.monotonic() < deadline, batch
            await asyncio.sleep(0.05)

        response = await gateway.post(f"{BATCH}/{data['batchId']}/cancel")
        assert response.status_code == 200
        batch, most_seen = await follow_batch(gateway, data["batchId"], {"cancelled"}, 60)

        assert batch["counts"]["cancelled"] == 4
        assert most_seen <= 2
        ran, waited = [], []
        for job in await jobs_of(gateway, data["jobIds"]):
            (ran if job["startedAt"] else waited).append(job)
            assert await containers_of(job["id"]) == []
        assert len(ran) == 2 and len(waited) == 2
        for job in ran:
            assert [e["type"] for e in job["events"]][-2:] == ["cancelling", "cancelled"]
        for job in waited:
            assert [e["type"] for e in job["events"]] == ["created", "cancelled"]
