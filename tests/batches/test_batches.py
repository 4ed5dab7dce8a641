"""POST /jobs/batch, GET /jobs/batch/{id}, GET /jobs?batchId=, cancelling a batch: the API
side, with no engine running (the engine side is in test_concurrency.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application import create_app
from app.batches.schemas import DEFAULT_CONCURRENCY, MAX_BATCH_JOBS, MAX_CONCURRENCY
from app.jobs.lifecycle import JobStatus
from app.settings import Settings
from tests.factories import API, Keys, job_spec, move_job
from tests.servers import lifespan_app

BATCH = f"{API}/jobs/batch"


async def submit(
    client: httpx.AsyncClient, jobs: list[dict[str, Any]], concurrency: int = 2
) -> Any:
    response = await client.post(BATCH, json={"jobs": jobs, "concurrency": concurrency})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def fields(response: httpx.Response) -> list[str]:
    return [detail["field"] for detail in response.json()["error"]["details"]]


async def stored(db: AsyncEngine, table: str) -> int:
    async with db.connect() as connection:
        return int(await connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)


class TestSubmitBatch:
    async def test_answers_the_job_ids_and_the_batch(self, client: httpx.AsyncClient) -> None:
        jobs = [job_spec(env={"N": str(n)}) for n in range(3)]

        response = await client.post(BATCH, json={"jobs": jobs, "concurrency": 2})

        assert response.status_code == 201
        data = response.json()["data"]
        assert data["status"] == "submitted"
        assert data["batchId"].startswith("bat_")
        assert data["concurrency"] == 2
        assert len(data["jobIds"]) == 3 and len(set(data["jobIds"])) == 3
        for n, job_id in enumerate(data["jobIds"]):
            job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
            assert job["batchId"] == data["batchId"]
            assert job["status"] == "pending"
            assert job["config"]["env"] == {"N": str(n)}, "jobIds keep the request's order"
            assert [e["type"] for e in job["events"]] == ["created"]

    async def test_the_batch_reports_counts_per_status(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        data = await submit(client, [job_spec()] * 4, concurrency=3)
        first, second, *_ = data["jobIds"]
        await move_job(db, first, JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.COMPLETED)
        await move_job(db, second, JobStatus.SCHEDULED, JobStatus.RUNNING)

        batch = (await client.get(f"{BATCH}/{data['batchId']}")).json()["data"]

        assert batch["id"] == data["batchId"]
        assert batch["status"] == "active"
        assert batch["concurrency"] == 3
        assert batch["total"] == 4
        assert batch["jobIds"] == data["jobIds"]
        assert batch["counts"] == {
            "pending": 2,
            "scheduled": 0,
            "running": 1,
            "completed": 1,
            "failed": 0,
            "cancelling": 0,
            "cancelled": 0,
        }
        assert batch["cancelledAt"] is None

    async def test_list_jobs_filters_by_batch(self, client: httpx.AsyncClient) -> None:
        one = await submit(client, [job_spec()] * 3)
        await submit(client, [job_spec()] * 2)
        await client.post(f"{API}/jobs", json=job_spec())

        listed = (await client.get(f"{API}/jobs", params={"batchId": one["batchId"]})).json()
        page = (
            await client.get(f"{API}/jobs", params={"batchId": one["batchId"], "limit": 2})
        ).json()

        assert sorted(job["id"] for job in listed["data"]) == sorted(one["jobIds"])
        assert {job["batchId"] for job in listed["data"]} == {one["batchId"]}
        assert listed["meta"]["pagination"]["total"] == 3
        assert page["meta"]["pagination"]["pages"] == 2
        following = (
            await client.get(
                f"{API}/jobs",
                params={
                    "batchId": one["batchId"],
                    "limit": 2,
                    "cursor": page["meta"]["pagination"]["nextCursor"],
                },
            )
        ).json()["data"]
        assert sorted(j["id"] for j in page["data"] + following) == sorted(one["jobIds"])
        everything = (await client.get(f"{API}/jobs")).json()["meta"]["pagination"]["total"]
        assert everything == 6

    async def test_one_bad_job_fails_the_batch_and_nothing_is_created(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        jobs = [
            job_spec(),
            job_spec(cpu=0),
            job_spec(),
            job_spec(image="Not An Image!", env={"1x": "y"}),
        ]

        response = await client.post(BATCH, json={"jobs": jobs, "concurrency": 2})

        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert sorted(fields(response)) == ["jobs[1].cpu", "jobs[3].env", "jobs[3].image"]
        assert await stored(db, "jobs") == 0
        assert await stored(db, "job_batches") == 0
        assert await stored(db, "job_events") == 0

    async def test_a_job_its_provider_cannot_run_fails_the_batch(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        jobs = [job_spec(), job_spec(), job_spec(gpu={"count": 1})]

        response = await client.post(BATCH, json={"jobs": jobs, "concurrency": 1})

        assert response.status_code == 400
        assert fields(response) == ["jobs[2].gpu"]
        assert "nothing was created" in response.json()["error"]["message"]
        assert await stored(db, "jobs") == 0

    async def test_concurrency_is_optional(self, client: httpx.AsyncClient) -> None:
        response = await client.post(BATCH, json={"jobs": [job_spec(), job_spec()]})
        assert response.status_code == 201, response.text
        assert response.json()["data"]["concurrency"] == DEFAULT_CONCURRENCY == 10
        batch_id = response.json()["data"]["batchId"]
        batch = (await client.get(f"{BATCH}/{batch_id}")).json()["data"]
        assert batch["concurrency"] == DEFAULT_CONCURRENCY

    async def test_integral_numbers_are_integers(self, client: httpx.AsyncClient) -> None:
        jobs = [job_spec(cpu=1000.0, duration=3600.0)]
        response = await client.post(BATCH, json={"jobs": jobs, "concurrency": 2.0})
        assert response.status_code == 201, response.text
        assert response.json()["data"]["concurrency"] == 2
        job_id = response.json()["data"]["jobIds"][0]
        job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
        assert (job["cpu"], job["duration"]) == (1000, 3600)

    async def test_a_job_whose_provider_is_not_configured_is_named(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        # No CORTEX_AKASH_API_KEY in the tests' settings: akash is not configured.
        jobs = [job_spec(), job_spec(provider="akash"), job_spec()]

        response = await client.post(BATCH, json={"jobs": jobs})

        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "PROVIDER_UNAVAILABLE"
        assert fields(response) == ["jobs[1].provider"]
        assert "not configured" in error["details"][0]["message"]
        assert "nothing was created" in error["message"]
        assert await stored(db, "jobs") == 0

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"jobs": [], "concurrency": 1}, "jobs"),
            ({"jobs": [job_spec()] * (MAX_BATCH_JOBS + 1), "concurrency": 1}, "jobs"),
            ({"jobs": [job_spec()], "concurrency": 0}, "concurrency"),
            ({"jobs": [job_spec()], "concurrency": MAX_CONCURRENCY + 1}, "concurrency"),
            ({"jobs": [job_spec()], "concurrency": "2"}, "concurrency"),
            ({"jobs": [job_spec()], "concurrency": 1.5}, "concurrency"),
            ({"concurrency": 1}, "jobs"),
            ({"jobs": [job_spec()], "concurrency": 1, "priority": 1}, "priority"),
        ],
    )
    async def test_bounds_are_clear_400s(
        self, client: httpx.AsyncClient, db: AsyncEngine, body: dict[str, Any], field: str
    ) -> None:
        response = await client.post(BATCH, json=body)

        assert response.status_code == 400
        assert fields(response) == [field]
        assert await stored(db, "jobs") == 0

    async def test_another_accounts_batch_is_404(
        self, client: httpx.AsyncClient, keys: Keys
    ) -> None:
        data = await submit(client, [job_spec()])
        other = {"Authorization": f"Bearer {await keys.create(account='beta')}"}

        for response in (
            await client.get(f"{BATCH}/{data['batchId']}", headers=other),
            await client.post(f"{BATCH}/{data['batchId']}/cancel", headers=other),
            await client.get(f"{BATCH}/bat_0000000000000000"),
            await client.get(f"{BATCH}/nonsense"),
        ):
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "BATCH_NOT_FOUND"
        theirs = await client.get(f"{API}/jobs", params={"batchId": data["batchId"]}, headers=other)
        assert theirs.json()["data"] == []
        job = (await client.get(f"{API}/jobs/{data['jobIds'][0]}")).json()["data"]
        assert job["status"] == "pending"

    async def test_batch_and_template_paths_are_not_read_as_job_ids(
        self, client: httpx.AsyncClient
    ) -> None:
        assert (await client.get(BATCH)).status_code == 200
        assert (await client.get(f"{API}/jobs/templates")).json()["error"]["code"] == "FORBIDDEN"
        wrong = await client.get(f"{API}/jobs/from-template/tpl_0000000000000000")
        assert wrong.status_code == 405


class TestListBatches:
    async def test_newest_first_with_counts(
        self, client: httpx.AsyncClient, keys: Keys, db: AsyncEngine
    ) -> None:
        older = await submit(client, [job_spec()] * 2)
        newer = await submit(client, [job_spec()] * 3, concurrency=1)
        await move_job(db, newer["jobIds"][0], JobStatus.CANCELLED)
        other = {"Authorization": f"Bearer {await keys.create(account='beta')}"}
        await client.post(BATCH, json={"jobs": [job_spec()], "concurrency": 1}, headers=other)

        response = await client.get(BATCH, params={"limit": 1})
        second = await client.get(BATCH, params={"limit": 1, "page": 2})

        assert response.status_code == 200
        (first,) = response.json()["data"]
        assert first["id"] == newer["batchId"]
        assert (first["total"], first["concurrency"]) == (3, 1)
        assert (first["counts"]["pending"], first["counts"]["cancelled"]) == (2, 1)
        assert "jobIds" not in first
        assert response.json()["meta"]["pagination"] == {
            "total": 2,
            "page": 1,
            "limit": 1,
            "pages": 2,
        }
        assert [b["id"] for b in second.json()["data"]] == [older["batchId"]]


@pytest.fixture
async def outbox_client(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway with no engine and no dispatcher: webhook deliveries stay in the outbox."""
    settings = Settings(
        database_url=database_url,
        engine_enabled=False,
        webhooks_enabled=False,
        webhook_allowed_networks="127.0.0.0/8",
    )
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            scopes = ["jobs:read", "jobs:write", "webhooks:read", "webhooks:write"]
            client.headers["Authorization"] = f"Bearer {await keys.create(scope=scopes)}"
            yield client


class TestCancelBatch:
    async def test_cancels_every_unfinished_job_with_its_events_and_webhooks(
        self, outbox_client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        client = outbox_client
        hook = await client.post(
            f"{API}/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["job.cancelled"]},
        )
        assert hook.status_code == 201, hook.text
        data = await submit(client, [job_spec()] * 4)
        done, running, pending_a, pending_b = data["jobIds"]
        await move_job(db, done, JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.COMPLETED)
        await move_job(db, running, JobStatus.SCHEDULED, JobStatus.RUNNING)

        response = await client.post(f"{BATCH}/{data['batchId']}/cancel")

        assert response.status_code == 200
        batch = response.json()["data"]
        assert batch["status"] == "cancelling", "the running job waits for the engine"
        assert batch["cancelledAt"] is not None
        assert {k: v for k, v in batch["counts"].items() if v} == {
            "completed": 1,
            "cancelling": 1,
            "cancelled": 2,
        }
        for job_id in (pending_a, pending_b):
            job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
            assert job["status"] == "cancelled"
            assert [e["type"] for e in job["events"]] == ["created", "cancelled"]
        job = (await client.get(f"{API}/jobs/{running}")).json()["data"]
        assert job["events"][-1]["type"] == "cancelling"
        assert (await client.get(f"{API}/jobs/{done}")).json()["data"]["status"] == "completed"
        deliveries = (
            await client.get(f"{API}/webhooks/{hook.json()['data']['id']}/deliveries")
        ).json()["data"]
        assert sorted(d["jobId"] for d in deliveries) == sorted([pending_a, pending_b])
        assert {d["eventType"] for d in deliveries} == {"job.cancelled"}

        await move_job(db, running, JobStatus.CANCELLED)
        again = await client.post(f"{BATCH}/{data['batchId']}/cancel")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "BATCH_ALREADY_FINISHED"
        final = (await client.get(f"{BATCH}/{data['batchId']}")).json()["data"]
        assert final["status"] == "cancelled"
        assert final["cancelledAt"] == batch["cancelledAt"]

    async def test_a_finished_batch_answers_409_and_says_finished(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        data = await submit(client, [job_spec()] * 2)
        for job_id in data["jobIds"]:
            await move_job(db, job_id, JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.FAILED)

        response = await client.post(f"{BATCH}/{data['batchId']}/cancel")

        assert response.status_code == 409
        batch = (await client.get(f"{BATCH}/{data['batchId']}")).json()["data"]
        assert batch["status"] == "finished"
        assert batch["counts"]["failed"] == 2
