"""GET /jobs/{id} and POST /jobs/{id}/cancel."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.jobs.lifecycle import JobStatus
from tests.factories import API, Keys, move_job, submit


class TestGetJob:
    async def test_answers_the_job_with_its_timeline(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        job = await submit(client)
        await move_job(db, job["id"], JobStatus.SCHEDULED, JobStatus.RUNNING)

        response = await client.get(f"{API}/jobs/{job['id']}")

        assert response.status_code == 200
        data = response.json()["data"]
        assert data["status"] == "running"
        assert data["startedAt"] is not None
        assert [e["type"] for e in data["events"]] == ["created", "scheduled", "started"]
        assert data["events"][2]["timestamp"] == data["startedAt"]

    @pytest.mark.parametrize(
        "job_id", ["job_0123456789abcdef", "job_x", "nothing", "job_" + "f" * 40]
    )
    async def test_unknown_job_is_404(self, client: httpx.AsyncClient, job_id: str) -> None:
        response = await client.get(f"{API}/jobs/{job_id}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "JOB_NOT_FOUND"

    async def test_another_accounts_job_is_404_like_a_missing_one(
        self, client: httpx.AsyncClient, app_client: httpx.AsyncClient, keys: Keys
    ) -> None:
        job = await submit(client)
        other = {"Authorization": f"Bearer {await keys.create(account='beta')}"}

        theirs = await app_client.get(f"{API}/jobs/{job['id']}", headers=other)
        missing = await app_client.get(f"{API}/jobs/job_0000000000000000", headers=other)

        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "JOB_NOT_FOUND"


class TestCancelJob:
    async def test_pending_job_is_cancelled_at_once(self, client: httpx.AsyncClient) -> None:
        job = await submit(client)

        response = await client.post(f"{API}/jobs/{job['id']}/cancel")

        assert response.status_code == 200
        data = response.json()["data"]
        assert data["id"] == job["id"]
        assert data["status"] == "cancelled"
        assert data["endedAt"] is not None
        assert [e["type"] for e in data["events"]] == ["created", "cancelled"]

    @pytest.mark.parametrize(
        "path", [[JobStatus.SCHEDULED], [JobStatus.SCHEDULED, JobStatus.RUNNING]]
    )
    async def test_active_job_goes_to_cancelling(
        self, client: httpx.AsyncClient, db: AsyncEngine, path: list[JobStatus]
    ) -> None:
        job = await submit(client)
        await move_job(db, job["id"], *path)

        response = await client.post(f"{API}/jobs/{job['id']}/cancel")

        assert response.status_code == 200
        data = response.json()["data"]
        assert data["status"] == "cancelling"
        assert data["endedAt"] is None
        assert data["events"][-1]["type"] == "cancelling"

    async def test_cancelling_again_answers_the_same_state(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        job = await submit(client)
        await move_job(db, job["id"], JobStatus.SCHEDULED, JobStatus.RUNNING)
        first = await client.post(f"{API}/jobs/{job['id']}/cancel")

        second = await client.post(f"{API}/jobs/{job['id']}/cancel")

        assert second.status_code == 200
        assert second.json()["data"]["status"] == "cancelling"
        assert second.json()["data"]["events"] == first.json()["data"]["events"]

    @pytest.mark.parametrize(
        "path",
        [
            [JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.COMPLETED],
            [JobStatus.FAILED],
            [JobStatus.CANCELLED],
        ],
    )
    async def test_finished_job_answers_409(
        self, client: httpx.AsyncClient, db: AsyncEngine, path: list[JobStatus]
    ) -> None:
        job = await submit(client)
        await move_job(db, job["id"], *path)

        response = await client.post(f"{API}/jobs/{job['id']}/cancel")

        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "JOB_ALREADY_FINISHED"
        assert path[-1].value in error["message"]
        after = (await client.get(f"{API}/jobs/{job['id']}")).json()["data"]
        assert after["status"] == path[-1].value

    async def test_another_accounts_job_cannot_be_cancelled(
        self, client: httpx.AsyncClient, app_client: httpx.AsyncClient, keys: Keys
    ) -> None:
        job = await submit(client)
        other = {"Authorization": f"Bearer {await keys.create(account='beta')}"}

        response = await app_client.post(f"{API}/jobs/{job['id']}/cancel", headers=other)

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "JOB_NOT_FOUND"
        mine = await client.get(f"{API}/jobs/{job['id']}")
        assert mine.json()["data"]["status"] == "pending"

    async def test_read_only_key_cannot_cancel(
        self, client: httpx.AsyncClient, app_client: httpx.AsyncClient, keys: Keys
    ) -> None:
        job = await submit(client)
        reader = {"Authorization": f"Bearer {await keys.create(scope=['jobs:read'])}"}
        response = await app_client.post(f"{API}/jobs/{job['id']}/cancel", headers=reader)
        assert response.status_code == 403
