"""The progress service on the database: throttled events, the trailing event at the end,
the per-job cap, and a waiting message that ends with the wait."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.jobs import progress, repository
from app.jobs.lifecycle import JobStatus
from app.jobs.record import JobRecord
from app.jobs.service import request_cancel
from providers.types import WorkloadState, WorkloadStatus
from tests.factories import API, move_job, submit

HOUR = 3600.0


async def job_of(db: AsyncEngine, job_id: str) -> JobRecord:
    async with database.reading(db) as connection:
        row = await repository.get_job_by_id(connection, job_id, for_update=False)
    assert row is not None
    return JobRecord.from_row(row)


async def apply(db: AsyncEngine, job_id: str, columns: dict[str, Any], interval: float) -> None:
    async with database.transaction(db) as connection:
        row = await repository.get_job_by_id(connection, job_id)
        assert row is not None
        await progress.apply(connection, JobRecord.from_row(row), columns, interval)


async def timeline(client: httpx.AsyncClient, job_id: str) -> list[tuple[str, Any]]:
    events = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]["events"]
    return [(e["type"], e["data"]) for e in events if e["type"] in ("progress", "completed")]


async def running_job(client: httpx.AsyncClient, db: AsyncEngine) -> str:
    job_id: str = (await submit(client))["id"]
    await move_job(db, job_id, JobStatus.SCHEDULED, JobStatus.RUNNING)
    return job_id


def reported(value: int) -> dict[str, Any]:
    return {"progress": value, "statusMessage": None, "outputUrl": None}


class TestThrottle:
    async def test_the_first_change_is_announced_later_ones_wait_and_the_last_comes_at_the_end(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        job_id = await running_job(client, db)

        for value in (10, 20, 30):
            await apply(db, job_id, {"progress": value}, HOUR)

        assert await timeline(client, job_id) == [("progress", reported(10))]
        job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
        assert job["progress"] == 30, "the job shows the latest value at once"
        await move_job(db, job_id, JobStatus.COMPLETED)
        assert await timeline(client, job_id) == [
            ("progress", reported(10)),
            ("progress", reported(30)),
            ("completed", None),
        ]

    async def test_the_same_values_again_are_no_change(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        job_id = await running_job(client, db)

        for _ in range(5):
            await apply(db, job_id, {"progress": 10}, 0.0)

        assert await timeline(client, job_id) == [("progress", reported(10))]
        assert not (await job_of(db, job_id)).progress_unsent

    async def test_past_the_cap_only_the_final_values_are_announced(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        job_id = await running_job(client, db)
        async with database.transaction(db) as connection:
            await repository.update_job(
                connection, job_id, {"progress_events": progress.MAX_PROGRESS_EVENTS}
            )

        for value in (1, 2, 3):
            await apply(db, job_id, {"progress": value}, 0.0)

        assert await timeline(client, job_id) == []
        await move_job(db, job_id, JobStatus.COMPLETED)
        assert await timeline(client, job_id) == [("progress", reported(3)), ("completed", None)]


class TestWaitingMessage:
    async def test_a_job_that_never_ran_ends_without_its_waiting_message(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        job_id: str = (await submit(client))["id"]
        await move_job(db, job_id, JobStatus.SCHEDULED)
        waiting = WorkloadStatus(WorkloadState.PENDING, waiting="waiting for bids: none so far")
        async with database.transaction(db) as connection:
            await progress.note_waiting(connection, await job_of(db, job_id), waiting, HOUR)
        shown = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
        assert shown["statusMessage"] == "waiting for bids: none so far"

        async with database.transaction(db) as connection:
            row = await repository.get_job_by_id(connection, job_id)
            assert row is not None
            await request_cancel(connection, JobRecord.from_row(row))
        await move_job(db, job_id, JobStatus.CANCELLED)

        ended = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
        assert (ended["status"], ended["statusMessage"]) == ("cancelled", None)

    async def test_the_waiting_message_is_cleared_silently_when_the_workload_runs(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        job_id: str = (await submit(client))["id"]
        await move_job(db, job_id, JobStatus.SCHEDULED)
        starting = WorkloadStatus(WorkloadState.STARTING, waiting="starting container")
        async with database.transaction(db) as connection:
            await progress.note_waiting(connection, await job_of(db, job_id), starting, HOUR)
        async with database.transaction(db) as connection:
            running = WorkloadStatus(WorkloadState.RUNNING)
            await progress.note_waiting(connection, await job_of(db, job_id), running, HOUR)

        job = await job_of(db, job_id)
        assert (job.status_message, job.progress_unsent) == (None, False)
        events = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]["events"]
        assert [e["message"] for e in events if e["type"] == "progress"] == ["starting container"]

    async def test_a_long_waiting_message_is_cut_to_a_status_messages_length(
        self, client: httpx.AsyncClient, db: AsyncEngine
    ) -> None:
        job_id: str = (await submit(client))["id"]
        await move_job(db, job_id, JobStatus.SCHEDULED)
        long = "deploying the image on " + "p" * 300  # a network's provider names are its own
        waiting = WorkloadStatus(WorkloadState.STARTING, waiting=long)
        async with database.transaction(db) as connection:
            await progress.note_waiting(connection, await job_of(db, job_id), waiting, HOUR)

        shown = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]["statusMessage"]
        assert shown == long[:200]
        assert not progress.waiting_changed(await job_of(db, job_id), waiting)
