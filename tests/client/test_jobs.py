"""The Python client against a real gateway: real HTTP, real Postgres, real containers."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cortex_client import AsyncClient, Client, Job, JobSummary, LogEntry, errors
from tests.factories import seed_jobs

SPEC = {"provider": "local", "image": "busybox:latest", "cpu": 500, "memory": "64Mi"}


async def test_a_job_runs_and_its_logs_events_and_result_arrive_as_models(
    gateway_url: str, api_key: str
) -> None:
    async with AsyncClient(url=gateway_url, api_key=api_key) as cortex:
        job = await cortex.jobs.submit(
            **SPEC,
            storage="1Gi",
            duration=60,
            env={"WHO": "world"},
            command=[
                "sh",
                "-c",
                'for i in 1 2 3; do echo "hello $WHO $i"; sleep 0.2; done; exit 4',
            ],
        )
        assert isinstance(job, Job)
        assert job.status == "pending" and job.config.env == {"WHO": "world"}

        lines = [entry async for entry in cortex.jobs.follow_logs(job.id)]
        assert all(isinstance(entry, LogEntry) for entry in lines)
        assert [entry.line for entry in lines] == [f"hello world {i}" for i in (1, 2, 3)]
        assert [entry.seq for entry in lines] == sorted({entry.seq for entry in lines})

        ended = await cortex.jobs.wait(job.id)
        assert ended.status == "failed"
        assert (ended.results.exit_code, ended.results.reason) == (4, "exit_code")
        events = await cortex.jobs.events(job.id)
        assert (events[0].type, events[-1].type) == ("created", "failed")
        followed = [e.type async for e in cortex.jobs.follow_events(job.id)]
        assert followed == [e.type for e in events]
        assert [e.line for e in await cortex.jobs.logs(job.id, tail=2)] == [
            "hello world 2",
            "hello world 3",
        ]
        changes = await cortex.jobs.account_events()
        assert {c.job_id for c in changes} == {job.id}
        assert changes[-1].status == "failed"
        metrics = await cortex.jobs.metrics(job.id, period="1h", resolution="1m")
        assert metrics.network is not None
        token = await cortex.jobs.stream_token(job.id)
        assert token.token
        assert (await cortex.jobs.account_stream_token()).token != token.token


async def test_every_error_answer_raises_the_class_of_its_code(
    gateway_url: str, api_key: str
) -> None:
    async with AsyncClient(url=gateway_url, api_key=api_key) as cortex:
        with pytest.raises(errors.JobNotFound) as missing:
            await cortex.jobs.get("job_0123456789abcdef")
        assert (missing.value.status_code, missing.value.code) == (404, "JOB_NOT_FOUND")

        with pytest.raises(errors.ValidationError) as invalid:
            await cortex.jobs.submit(provider="aws", image="nginx", cpu=1, memory="1Mi")
        fields = {detail["field"] for detail in invalid.value.details}
        assert {"provider", "memory", "storage", "duration"} <= fields

        job = await cortex.jobs.submit(**SPEC, storage="1Gi", duration=60, command=["true"])
        await cortex.jobs.wait(job.id)
        with pytest.raises(errors.JobAlreadyFinished):
            await cortex.jobs.cancel(job.id)

    async with AsyncClient(url=gateway_url, api_key="cgw_not-a-real-key-at-all-000000") as bad:
        with pytest.raises(errors.Unauthorized) as refused:
            await bad.jobs.list()
        assert str(refused.value).startswith("UNAUTHORIZED: ")

    async with AsyncClient(url="http://127.0.0.1:1", api_key=api_key) as nowhere:
        with pytest.raises(errors.ConnectionFailed):
            await nowhere.jobs.list()


def test_the_client_calls_the_servers_base_path() -> None:
    from app import openapi
    from cortex_client import _core

    assert _core.PREFIX == openapi.PREFIX


def test_every_code_of_the_error_table_has_its_class() -> None:
    from app import errors as server

    for server_class in server.ALL_ERRORS:
        client_class = errors.BY_CODE[server_class.code]
        assert client_class.__name__ == server_class.__name__
        assert client_class.status_code == server_class.status_code
        assert getattr(errors, server_class.__name__) is client_class
        assert issubclass(client_class, errors.ApiError)


async def test_iterating_reads_every_page_once(
    gateway_url: str, api_key: str, db: AsyncEngine
) -> None:
    seeded = await seed_jobs(db, "alpha", [{"status": "completed"} for _ in range(7)])
    async with AsyncClient(url=gateway_url, api_key=api_key) as cortex:
        page = await cortex.jobs.list(limit=3, status=["completed"])
        assert len(page.items) == 3 and page.pagination.total == 7
        assert page.pagination.next_cursor is not None
        assert all(isinstance(job, JobSummary) for job in page.items)
        every = [job.id async for job in cortex.jobs.iterate(status="completed", page_size=3)]
    assert sorted(every) == sorted(seeded)


async def test_the_blocking_client_does_the_same(gateway_url: str, api_key: str) -> None:
    def run() -> tuple[Job, list[str], list[str]]:
        with Client(url=gateway_url + "/api/plugin-core/", api_key=api_key) as cortex:
            job = cortex.jobs.submit(
                dict(SPEC, storage="1Gi", duration=60),
                command=["sh", "-c", "echo one; echo two"],
            )
            lines = [entry.line for entry in cortex.jobs.follow_logs(job.id)]
            ids = [j.id for j in cortex.jobs.iterate(page_size=1)]
            return cortex.jobs.wait(job.id), lines, ids

    job, lines, ids = await asyncio.to_thread(run)
    assert job.status == "completed" and job.results.exit_code == 0
    assert lines == ["one", "two"]
    assert ids == [job.id]


async def test_providers_and_quotes(gateway_url: str, api_key: str) -> None:
    async with AsyncClient(url=gateway_url, api_key=api_key) as cortex:
        providers = {p.name: p for p in await cortex.providers.list()}
        assert providers["local"].health.status == "healthy"
        assert (await cortex.providers.get("local")).capabilities is not None
        with pytest.raises(errors.ProviderNotFound):
            await cortex.providers.get("nowhere")
        comparison = await cortex.providers.quote(
            image="busybox:latest", cpu=500, memory="64Mi", storage="1Gi", duration=60
        )
        assert comparison.chosen == "local"
        assert comparison.candidates[0].provider == "local"
        assert {c.provider for c in comparison.candidates} == set(providers)
