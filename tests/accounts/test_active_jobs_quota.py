"""The active-jobs quota is exact without an account lock on the common path: submissions
racing from several processes never leave more active jobs than the limit, a lowered limit
holds until enough jobs end, ended jobs free their places, and batches count every job."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.jobs.lifecycle import JobStatus
from tests.accounts.overrides import set_limits
from tests.conftest import API
from tests.e2e.test_gateway_process import Gateway
from tests.factories import Keys, job_spec, move_job


async def _account_of(client: httpx.AsyncClient) -> str:
    response = await client.get(f"{API}/account")
    assert response.status_code == 200
    return str(response.json()["data"]["id"])


async def _active_places(db: AsyncEngine, account_id: str) -> list[int]:
    async with database.reading(db) as connection:
        result = await connection.execute(
            sa.text(
                "SELECT quota_slot FROM jobs WHERE account_id = :account"
                " AND status IN ('pending', 'scheduled', 'running') ORDER BY quota_slot"
            ),
            {"account": account_id},
        )
        return [row[0] for row in result]


def _refusal(limit: int, current: int) -> list[dict[str, Any]]:
    return [{"quota": "max_active_jobs", "limit": limit, "current": current}]


async def _current(client: httpx.AsyncClient) -> int:
    quotas = (await client.get(f"{API}/account")).json()["data"]["quotas"]
    return int(next(q["current"] for q in quotas if q["name"] == "max_active_jobs"))


async def _post(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    return await client.post(f"{url}/jobs", json=job_spec(), headers=headers, timeout=60)


async def test_sixty_racing_submissions_from_two_processes_store_exactly_the_limit(
    database_url: str, db: AsyncEngine, keys: Keys, tmp_path: Path
) -> None:
    secret = await keys.create(account="racing")
    headers = {"Authorization": f"Bearer {secret}"}
    await set_limits(db, "racing", max_active_jobs=20)
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        CORTEX_DATA_DIR=str(tmp_path / "unused"),
        CORTEX_ENGINE_ENABLED="false",
    )
    gateways = [Gateway(env, tmp_path / f"gateway-{n}.log") for n in range(2)]
    try:
        await asyncio.gather(*(asyncio.to_thread(g.wait_until_serving) for g in gateways))
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(
                *(_post(client, gateways[n % 2].url, headers) for n in range(60))
            )
            statuses = Counter(answer.status_code for answer in answers)
            assert statuses == {201: 20, 403: 40}, [a.text for a in answers if a.status_code >= 500]
            for refused in (answer for answer in answers if answer.status_code == 403):
                error = refused.json()["error"]
                assert error["code"] == "QUOTA_EXCEEDED"
                assert error["details"] == _refusal(20, 20)
            accepted = [a.json()["data"]["id"] for a in answers if a.status_code == 201]
            account = (await client.get(f"{gateways[0].url}/account", headers=headers)).json()
            assert {"name": "max_active_jobs", "limit": 20, "current": 20} in account["data"][
                "quotas"
            ]
            listed = await client.get(f"{gateways[1].url}/jobs?limit=100", headers=headers)
            assert sorted(job["id"] for job in listed.json()["data"]) == sorted(accepted)
            places = await _active_places(db, account["data"]["id"])
            assert len(set(places)) == 20 and all(0 <= place < 20 for place in places)

            # After a restart the quota is what the database holds: still full, and a job
            # that ends gives its place to exactly one new one.
            for gateway in gateways:
                assert gateway.interrupt() == 0
            gateways = [Gateway(env, tmp_path / "restarted.log")]
            await asyncio.to_thread(gateways[0].wait_until_serving)
            url = gateways[0].url
            refused = await _post(client, url, headers)
            assert refused.status_code == 403
            assert refused.json()["error"]["details"] == _refusal(20, 20)
            cancelled = await client.post(f"{url}/jobs/{accepted[0]}/cancel", headers=headers)
            assert cancelled.json()["data"]["status"] == "cancelled"
            again = await asyncio.gather(*(_post(client, url, headers) for _ in range(5)))
            assert sorted(answer.status_code for answer in again) == [201, 403, 403, 403, 403]
    finally:
        for gateway in gateways:
            gateway.kill()


async def test_a_lowered_limit_refuses_until_enough_jobs_end(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    account = await _account_of(client)
    await set_limits(db, account, max_active_jobs=10)
    jobs = [(await _post(client, API, {})).json()["data"]["id"] for _ in range(8)]
    # Eight places below 10: at least five are at or above the new limit of 3.
    await set_limits(db, account, max_active_jobs=3)
    for active in (8, 7, 6, 5, 4, 3):
        refused = await _post(client, API, {})
        assert refused.status_code == 403
        assert refused.json()["error"]["details"] == _refusal(3, active)
        await client.post(f"{API}/jobs/{jobs.pop()}/cancel")
    assert await _current(client) == 2
    assert (await _post(client, API, {})).status_code == 201
    assert (await _post(client, API, {})).status_code == 403
    assert await _current(client) == 3

    # Once the jobs holding places above the limit have ended, new ones take places below it.
    for job_id in jobs:
        await client.post(f"{API}/jobs/{job_id}/cancel")
    for _ in range(2):
        assert (await _post(client, API, {})).status_code == 201
    places = await _active_places(db, account)
    assert len(places) == 3 and sorted(places) == sorted(set(places))
    assert all(0 <= place < 3 for place in places)
    assert (await _post(client, API, {})).status_code == 403


async def test_ended_and_cancelling_jobs_free_their_places(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    await set_limits(db, await _account_of(client), max_active_jobs=2)
    first, second = [(await _post(client, API, {})).json()["data"]["id"] for _ in range(2)]
    assert (await _post(client, API, {})).status_code == 403
    await move_job(db, first, JobStatus.RUNNING, JobStatus.COMPLETED)
    third = (await _post(client, API, {})).json()["data"]["id"]
    assert (await _post(client, API, {})).status_code == 403
    # Stopping counts no more: a cancelling job leaves its place (as the count always had it).
    await move_job(db, second, JobStatus.RUNNING, JobStatus.CANCELLING)
    assert (await _post(client, API, {})).status_code == 201
    await move_job(db, third, JobStatus.SCHEDULED, JobStatus.FAILED)
    assert (await _post(client, API, {})).status_code == 201
    assert (await _post(client, API, {})).status_code == 403


async def test_a_batch_takes_a_place_per_job_or_none(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    account = await _account_of(client)
    await set_limits(db, account, max_active_jobs=5)
    for _ in range(2):
        assert (await _post(client, API, {})).status_code == 201

    def batch(size: int) -> dict[str, Any]:
        return {"jobs": [job_spec()] * size, "concurrency": 1}

    over = await client.post(f"{API}/jobs/batch", json=batch(4))
    assert over.status_code == 403
    assert over.json()["error"]["details"] == _refusal(5, 2)
    assert await _current(client) == 2
    racing = await asyncio.gather(
        *(client.post(f"{API}/jobs/batch", json=batch(3)) for _ in range(3))
    )
    assert sorted(answer.status_code for answer in racing) == [201, 403, 403]
    places = await _active_places(db, account)
    assert sorted(places) == sorted(set(places)) and len(places) == 5
    assert all(0 <= place < 5 for place in places)
    assert (await _post(client, API, {})).status_code == 403


async def test_jobs_submitted_without_a_limit_count_once_one_is_set(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    account = await _account_of(client)
    await set_limits(db, account, max_active_jobs=0)
    for _ in range(3):
        assert (await _post(client, API, {})).status_code == 201
    await set_limits(db, account, max_active_jobs=2)
    refused = await _post(client, API, {})
    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == _refusal(2, 3)
