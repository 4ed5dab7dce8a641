"""Quotas and allowed providers, against the in-process gateway: each refusal names its quota
and stores nothing; concurrent submissions cannot both take the last place."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.accounts import service
from tests.conftest import API
from tests.factories import job_spec


async def _set(db: AsyncEngine, account: str, **values: object) -> None:
    async with database.transaction(db) as connection:
        await service.set_limits(connection, account, values)
    service.forget_limits()


async def _account_of(client: httpx.AsyncClient) -> str:
    response = await client.get(f"{API}/account")
    assert response.status_code == 200
    return str(response.json()["data"]["id"])


async def test_active_jobs_quota_refuses_and_stores_nothing(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    await _set(db, await _account_of(client), max_active_jobs=2)
    assert (await client.post(f"{API}/jobs", json=job_spec())).status_code == 201
    racing = await asyncio.gather(*(client.post(f"{API}/jobs", json=job_spec()) for _ in range(4)))
    assert sorted(r.status_code for r in racing) == [201, 403, 403, 403]
    refused = next(r for r in racing if r.status_code == 403).json()["error"]
    assert refused["code"] == "QUOTA_EXCEEDED"
    assert refused["details"] == [{"quota": "max_active_jobs", "limit": 2, "current": 2}]
    assert len((await client.get(f"{API}/jobs")).json()["data"]) == 2

    batch = await client.post(f"{API}/jobs/batch", json={"jobs": [job_spec()], "concurrency": 1})
    assert batch.status_code == 403
    assert batch.json()["error"]["details"][0]["quota"] == "max_active_jobs"


async def test_batch_counts_all_its_jobs_and_its_size(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    await _set(db, await _account_of(client), max_active_jobs=3, max_jobs_per_batch=2)
    too_big = await client.post(
        f"{API}/jobs/batch", json={"jobs": [job_spec()] * 3, "concurrency": 1}
    )
    assert too_big.status_code == 403
    assert too_big.json()["error"]["details"] == [
        {"quota": "max_jobs_per_batch", "limit": 2, "current": 3}
    ]
    for _ in range(2):
        assert (await client.post(f"{API}/jobs", json=job_spec())).status_code == 201
    over = await client.post(f"{API}/jobs/batch", json={"jobs": [job_spec()] * 2, "concurrency": 1})
    assert over.status_code == 403
    assert over.json()["error"]["details"] == [
        {"quota": "max_active_jobs", "limit": 3, "current": 2}
    ]
    assert len((await client.get(f"{API}/jobs")).json()["data"]) == 2


async def test_zero_means_unlimited_and_default_clears(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    account = await _account_of(client)
    await _set(db, account, max_active_jobs=0)
    quotas = (await client.get(f"{API}/account")).json()["data"]["quotas"]
    assert {"name": "max_active_jobs", "limit": None, "current": 0} in quotas
    await _set(db, account, max_active_jobs=None)
    quotas = (await client.get(f"{API}/account")).json()["data"]["quotas"]
    assert {"name": "max_active_jobs", "limit": 1000, "current": 0} in quotas


async def test_allowed_providers(client: httpx.AsyncClient, db: AsyncEngine) -> None:
    await _set(db, await _account_of(client), allowed_providers=["akash"])
    refused = await client.post(f"{API}/jobs", json=job_spec())
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "PROVIDER_NOT_ALLOWED"
    assert error["details"] == [{"provider": "local", "allowed": ["akash"]}]
    auto = await client.post(f"{API}/jobs", json=job_spec(provider="auto", providers=["local"]))
    assert auto.status_code == 403
    assert (
        await client.post(f"{API}/jobs/batch", json={"jobs": [job_spec()], "concurrency": 1})
    ).status_code == 403
    assert (await client.get(f"{API}/jobs")).json()["data"] == []
    account = (await client.get(f"{API}/account")).json()["data"]
    assert account["allowedProviders"] == ["akash"]
