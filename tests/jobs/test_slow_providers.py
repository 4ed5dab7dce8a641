"""A provider that does not answer: submissions fail fast with PROVIDER_UNAVAILABLE and store
nothing, because admission asks the providers before any transaction opens and gives each
`CORTEX_PROVIDER_TIMEOUT` seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application import create_app
from app.settings import Settings
from providers.base import Provider
from providers.types import Handle, Health, LogBatch, MetricSample, Quote, WorkloadSpec
from tests.factories import API, Keys, job_spec
from tests.servers import lifespan_app

TIMEOUT = 0.5


class Silent(Provider):
    """The render network, never answering a health check."""

    name = "render"

    async def health(self) -> Health:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def quote(self, spec: WorkloadSpec) -> Quote:
        return self._unused()

    async def submit(self, spec: WorkloadSpec) -> Handle:
        return self._unused()

    async def status(self, handle: Handle) -> Any:
        return self._unused()

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        return self._unused()

    async def metrics(self, handle: Handle) -> MetricSample | None:
        return self._unused()

    async def cancel(self, handle: Handle) -> None:
        self._unused()

    async def release(self, handle: Handle) -> None:
        self._unused()

    def _unused(self) -> NoReturn:
        raise AssertionError("a job must never reach a provider that was not admitted")


@pytest.fixture
async def client(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=database_url, engine_enabled=False, provider_timeout=TIMEOUT)
    async with lifespan_app(create_app(settings, extra_providers=[Silent()])) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


async def count(db: AsyncEngine, table: str) -> int:
    async with db.connect() as connection:
        return int(await connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)


async def timed_post(client: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response:
    started = time.monotonic()
    response = await client.post(f"{API}{path}", **kwargs)
    assert time.monotonic() - started < TIMEOUT + 2.0
    return response


def assert_unavailable(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "PROVIDER_UNAVAILABLE"
    return dict(body["error"])


async def test_a_job_for_a_silent_provider_is_503_within_the_timeout(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    response = await timed_post(
        client, "/jobs", json=job_spec(provider="render"), headers={"Idempotency-Key": "k"}
    )

    error = assert_unavailable(response)
    assert error["message"] == f"Provider 'render' is unavailable: no answer within {TIMEOUT:g} s"
    assert await count(db, "jobs") == 0
    assert await count(db, "idempotency_keys") == 0


async def test_an_auto_job_with_only_a_silent_candidate_is_503(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    response = await timed_post(
        client, "/jobs", json=job_spec(provider="auto", providers=["render"])
    )

    error = assert_unavailable(response)
    assert f"render: no answer within {TIMEOUT:g} s" in error["message"]
    assert await count(db, "jobs") == 0


async def test_a_batch_with_a_job_for_a_silent_provider_stores_nothing(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    jobs = [job_spec(provider="render") for _ in range(3)]

    response = await timed_post(client, "/jobs/batch", json={"jobs": jobs, "concurrency": 1})

    assert_unavailable(response)
    assert await count(db, "job_batches") == 0
    assert await count(db, "jobs") == 0
