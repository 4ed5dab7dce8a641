"""Idempotency-Key on POST /jobs, POST /jobs/batch and POST /jobs/from-template/{id}: a
retry answers the first response and creates nothing; a key reused for another request is
refused; concurrent retries create one job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application import create_app
from app.settings import Settings
from tests.factories import API, Keys, job_spec
from tests.servers import uvicorn_server

JOBS = f"{API}/jobs"
SCOPES = ("jobs:read", "jobs:write", "templates:read", "templates:write")


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def count(db: AsyncEngine, table: str) -> int:
    async with db.connect() as connection:
        return int(await connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)


class TestRetries:
    async def test_a_retry_answers_the_first_response_and_creates_nothing(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        first = await client.post(JOBS, json=job_spec(), headers=keyed("order-1"))
        retry = await client.post(JOBS, json=job_spec(), headers=keyed("order-1"))

        assert first.status_code == retry.status_code == 201
        assert retry.content == first.content
        assert retry.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert await count(db, "jobs") == 1
        assert await count(db, "job_events") == 1

    async def test_the_same_json_in_another_layout_is_the_same_request(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        spec = job_spec(env={"A": "1", "B": "2"})
        first = await client.post(JOBS, json=spec, headers=keyed("k"))
        reordered = json.dumps(dict(reversed(list(spec.items()))), indent=2)

        retry = await client.post(
            JOBS,
            content=reordered,
            headers={**keyed("k"), "Content-Type": "application/json"},
        )

        assert retry.status_code == 201
        assert retry.json() == first.json()
        assert await count(db, "jobs") == 1

    async def test_without_a_key_every_request_creates_a_job(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        await client.post(JOBS, json=job_spec())
        await client.post(JOBS, json=job_spec())
        assert await count(db, "jobs") == 2

    async def test_a_key_reused_for_another_body_is_422(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        await client.post(JOBS, json=job_spec(), headers=keyed("k"))

        response = await client.post(JOBS, json=job_spec(cpu=2000), headers=keyed("k"))

        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert "POST /api/plugin-core/jobs" in error["message"]
        assert error["details"][0]["field"] == "Idempotency-Key"
        assert await count(db, "jobs") == 1

    async def test_a_key_reused_on_another_endpoint_is_422(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        await client.post(JOBS, json=job_spec(), headers=keyed("k"))

        response = await client.post(
            f"{JOBS}/batch", json={"jobs": [job_spec()], "concurrency": 1}, headers=keyed("k")
        )

        assert response.status_code == 422
        assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert await count(db, "job_batches") == 0

    async def test_keys_belong_to_one_account(
        self, client: httpx.AsyncClient, keys: Keys, db: AsyncEngine
    ) -> None:
        other = {"Authorization": f"Bearer {await keys.create(account='beta')}"}
        mine = await client.post(JOBS, json=job_spec(), headers=keyed("k"))

        theirs = await client.post(JOBS, json=job_spec(), headers={**keyed("k"), **other})

        assert theirs.status_code == 201
        assert "idempotent-replayed" not in theirs.headers
        assert theirs.json()["data"]["id"] != mine.json()["data"]["id"]
        assert await count(db, "jobs") == 2

    async def test_a_refused_request_leaves_the_key_free(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        refused = await client.post(JOBS, json=job_spec(cpu=0), headers=keyed("k"))
        assert refused.status_code == 400

        fixed = await client.post(JOBS, json=job_spec(), headers=keyed("k"))

        assert fixed.status_code == 201
        assert "idempotent-replayed" not in fixed.headers
        assert await count(db, "jobs") == 1

    async def test_a_key_is_remembered_for_24_hours(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        first = await client.post(JOBS, json=job_spec(), headers=keyed("k"))
        async with db.begin() as connection:
            await connection.execute(
                sa.text("UPDATE idempotency_keys SET created_at = now() - interval '23 hours'")
            )
        assert (await client.post(JOBS, json=job_spec(), headers=keyed("k"))).content == (
            first.content
        )
        async with db.begin() as connection:
            await connection.execute(
                sa.text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
            )

        later = await client.post(JOBS, json=job_spec(cpu=2000), headers=keyed("k"))

        assert later.status_code == 201
        assert later.json()["data"]["id"] != first.json()["data"]["id"]
        assert await count(db, "jobs") == 2
        assert await count(db, "idempotency_keys") == 1

    @pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "two words"])
    async def test_a_malformed_key_is_400(self, client: httpx.AsyncClient, key: str) -> None:
        response = await client.post(
            JOBS, json=job_spec(), headers={"Idempotency-Key": key.encode()}
        )
        assert response.status_code == 400
        assert response.json()["error"]["details"][0]["field"] == "Idempotency-Key"


async def test_the_openapi_document_describes_the_header(app_client: httpx.AsyncClient) -> None:
    document = (await app_client.get(f"{API}/openapi.json")).json()
    for path in ("/jobs", "/jobs/batch", "/jobs/from-template/{template_id}"):
        operation = document["paths"][API + path]["post"]
        headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert headers == ["Idempotency-Key"]
        assert "IDEMPOTENCY_KEY_REUSED" in operation["responses"]["422"]["description"]


class TestOtherSubmissions:
    @pytest.fixture
    async def client(self, app_client: httpx.AsyncClient, keys: Keys) -> httpx.AsyncClient:
        app_client.headers["Authorization"] = f"Bearer {await keys.create(scope=SCOPES)}"
        return app_client

    async def test_a_batch_is_submitted_once(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        body = {"jobs": [job_spec(), job_spec()], "concurrency": 1}
        first = await client.post(f"{JOBS}/batch", json=body, headers=keyed("b"))
        retry = await client.post(f"{JOBS}/batch", json=body, headers=keyed("b"))

        assert first.status_code == retry.status_code == 201
        assert retry.json()["data"]["batchId"] == first.json()["data"]["batchId"]
        assert retry.json()["data"]["jobIds"] == first.json()["data"]["jobIds"]
        assert await count(db, "job_batches") == 1
        assert await count(db, "jobs") == 2

    async def test_a_job_from_a_template_is_submitted_once(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        template = await client.post(f"{JOBS}/templates", json={"name": "t", "config": job_spec()})
        url = f"{JOBS}/from-template/{template.json()['data']['id']}"
        body = {"overrides": {"cpu": 250}}

        first = await client.post(url, json=body, headers=keyed("t"))
        retry = await client.post(url, json=body, headers=keyed("t"))
        other = await client.post(url, json={"overrides": {"cpu": 300}}, headers=keyed("t"))

        assert first.status_code == retry.status_code == 201
        assert retry.content == first.content
        assert other.status_code == 422
        assert await count(db, "jobs") == 1


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[str]:
    """The gateway on a real port: concurrent requests are concurrent connections."""
    async with uvicorn_server(create_app(settings)) as url:
        yield url


class TestConcurrentRetries:
    async def test_concurrent_requests_with_one_key_create_one_job(
        self, server: str, keys: Keys, db: AsyncEngine
    ) -> None:
        headers = {"Authorization": f"Bearer {await keys.create()}", **keyed("race")}
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=server, headers=headers, limits=limits) as http:
            responses = await asyncio.gather(*(http.post(JOBS, json=job_spec()) for _ in range(12)))

        assert [r.status_code for r in responses] == [201] * 12
        assert len({r.json()["data"]["id"] for r in responses}) == 1
        assert len({r.content for r in responses}) == 1
        replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
        assert len(replayed) == 11
        assert await count(db, "jobs") == 1

    async def test_concurrent_batches_with_one_key_create_one_batch(
        self, server: str, keys: Keys, db: AsyncEngine
    ) -> None:
        headers = {"Authorization": f"Bearer {await keys.create()}", **keyed("race")}
        body: dict[str, Any] = {"jobs": [job_spec()] * 3, "concurrency": 2}
        async with httpx.AsyncClient(base_url=server, headers=headers) as http:
            responses = await asyncio.gather(
                *(http.post(f"{JOBS}/batch", json=body) for _ in range(6))
            )

        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["data"]["batchId"] for r in responses}) == 1
        assert await count(db, "job_batches") == 1
        assert await count(db, "jobs") == 3

    async def test_concurrent_requests_with_one_key_and_different_bodies(
        self, server: str, keys: Keys, db: AsyncEngine
    ) -> None:
        headers = {"Authorization": f"Bearer {await keys.create()}", **keyed("race")}
        async with httpx.AsyncClient(base_url=server, headers=headers) as http:
            responses = await asyncio.gather(
                *(http.post(JOBS, json=job_spec(cpu=100 + n)) for n in range(6))
            )

        assert sorted(r.status_code for r in responses) == [201] + [422] * 5
        assert await count(db, "jobs") == 1
