"""Engine slots are shared fairly between accounts: a long queue of one account does not make
another account's job wait behind it, and `max_engine_slots` caps an account's jobs driven at
once."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx

from app.application import create_app
from tests.engine.conftest import busybox, engine_settings, submit, wait_for
from tests.factories import API, Keys
from tests.servers import lifespan_app

TAKEN = "scheduled,running,cancelling,completed,failed,cancelled"


@asynccontextmanager
async def gateway_for(
    database_url: str, keys: Keys, accounts: list[str], **settings: Any
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One gateway, and a client of it for each account. The test floods the API on purpose
    (200 submissions, then polling each), so the request rate limit is off."""
    settings = {"default_rate_limit": 0, **settings}
    async with lifespan_app(create_app(engine_settings(database_url, **settings))) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        clients = {}
        for account in accounts:
            client = httpx.AsyncClient(transport=transport, base_url="http://gateway")
            client.headers["Authorization"] = f"Bearer {await keys.create(account=account)}"
            clients[account] = client
        try:
            yield clients
        finally:
            for client in clients.values():
                await client.aclose()


async def taken_count(client: httpx.AsyncClient) -> int:
    """How many of the account's jobs an engine has taken (no longer pending)."""
    body = (await client.get(f"{API}/jobs", params={"status": TAKEN, "limit": 1})).json()
    total: int = body["meta"]["pagination"]["total"]
    return total


def started(job: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(job["startedAt"])


async def finish_all(client: httpx.AsyncClient, job_ids: list[str]) -> None:
    for job_id in job_ids:
        await client.post(f"{API}/jobs/{job_id}/cancel")
    for job_id in job_ids:
        await wait_for(client, job_id, timeout=120)


class TestFairShares:
    async def test_a_single_job_starts_before_another_accounts_long_queue(
        self, database_url: str, keys: Keys
    ) -> None:
        slots = 2
        async with gateway_for(
            database_url, keys, ["greedy", "modest"], engine_max_jobs=slots
        ) as clients:
            greedy, modest = clients["greedy"], clients["modest"]
            queue = [await submit(greedy, busybox("sleep 1")) for _ in range(200)]
            try:
                single = await submit(modest, busybox("echo hi"))
                # The greedy jobs an engine had taken before the single job was submitted.
                before = await taken_count(greedy)
                job = await wait_for(modest, single, timeout=60)
                assert job["status"] == "completed"

                jobs = [(await greedy.get(f"{API}/jobs/{i}")).json()["data"] for i in queue]
                ahead = [j for j in jobs if j["startedAt"] and started(j) < started(job)]
                # Only the jobs in the slots when it arrived, and those taking the slots
                # freed while its own claim was made, went first: not the queue of 200.
                assert len(ahead) <= before + slots, (len(ahead), before)
                assert sum(1 for j in jobs if j["status"] == "pending") > 100
            finally:
                await finish_all(greedy, queue)

    async def test_an_account_never_has_more_than_its_engine_slots_driven(
        self, database_url: str, keys: Keys
    ) -> None:
        async with gateway_for(
            database_url,
            keys,
            ["capped", "other"],
            engine_max_jobs=4,
            default_max_engine_slots=1,
        ) as clients:
            capped, other = clients["capped"], clients["other"]
            # Longer than a second: job times are whole seconds.
            mine = [await submit(capped, busybox("sleep 1.5")) for _ in range(3)]
            theirs = await submit(other, busybox("sleep 1.5"))
            jobs = [await wait_for(capped, job_id) for job_id in mine]
            their_job = await wait_for(other, theirs)

        assert [job["status"] for job in jobs] == ["completed"] * 3
        # One after another: each started after the one before had ended.
        for first, second in itertools.pairwise(jobs):
            assert datetime.fromisoformat(first["endedAt"]) <= started(second)
        # The cap is the account's own: another account's job ran beside them.
        assert started(their_job) < datetime.fromisoformat(jobs[-1]["endedAt"])
        assert datetime.fromisoformat(their_job["endedAt"]) > started(jobs[0])
