"""cost.projected is the quote times the duration from the moment a job is created (the POST
answer shows it), for a named provider, for `auto` (the chosen provider's quote) and for each
job of a batch; priced local jobs, no engine (nothing is scheduled)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.application import create_app
from app.settings import Settings
from tests.factories import API, Keys, job_spec
from tests.servers import lifespan_app

# 500 millicores at $36 per CPU-hour: $18 an hour, $0.30 for a minute.
PRICE = 36.0


@pytest.fixture
async def priced(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=database_url, engine_enabled=False, local_usd_per_cpu_hour=PRICE
    )
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


async def test_a_created_job_shows_its_projected_cost(priced: httpx.AsyncClient) -> None:
    response = await priced.post(f"{API}/jobs", json=job_spec(duration=60))
    assert response.status_code == 201, response.text
    job = response.json()["data"]
    assert job["status"] == "pending"
    assert job["cost"]["current"] == 0.0 and job["cost"]["projected"] == 0.3
    fetched = (await priced.get(f"{API}/jobs/{job['id']}")).json()["data"]
    assert fetched["cost"]["projected"] == 0.3


async def test_an_auto_job_shows_the_chosen_providers_projection(
    priced: httpx.AsyncClient,
) -> None:
    spec = job_spec(provider="auto", providers=["local"], duration=120)
    response = await priced.post(f"{API}/jobs", json=spec)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["cost"]["projected"] == 0.6


async def test_each_job_of_a_batch_shows_its_projected_cost(priced: httpx.AsyncClient) -> None:
    jobs = [job_spec(duration=60), job_spec(duration=600, cpu=1000)]
    response = await priced.post(f"{API}/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 201, response.text
    projected = []
    for job_id in response.json()["data"]["jobIds"]:
        projected.append((await priced.get(f"{API}/jobs/{job_id}")).json()["data"]["cost"])
    assert [cost["projected"] for cost in projected] == [0.3, 6.0]
