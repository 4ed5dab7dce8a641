"""GET /jobs/{id}/logs and /metrics over stored lines and samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.engine import repository
from providers.types import LogLine, MetricSample
from tests.factories import API, Keys, seed_jobs

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
async def job_id(client: httpx.AsyncClient, db: AsyncEngine) -> str:
    [job] = await seed_jobs(db, "alpha", [{"status": "running"}])
    lines = [LogLine(T0 + timedelta(seconds=i), f"line {i}", "stdout") for i in range(1, 31)]
    async with database.transaction(db) as connection:
        await repository.append_logs(connection, job, 0, lines)
    return job


class TestLogs:
    async def test_answers_the_lines_in_order(self, client: httpx.AsyncClient, job_id: str) -> None:
        response = await client.get(f"{API}/jobs/{job_id}/logs")
        assert response.status_code == 200
        logs = response.json()["data"]["logs"]
        assert [entry["line"] for entry in logs] == [f"line {i}" for i in range(1, 31)]
        assert logs[0] == {
            "seq": 1,
            "timestamp": "2026-11-25T12:00:01Z",
            "line": "line 1",
            "stream": "stdout",
        }

    async def test_tail_keeps_the_last_lines(self, client: httpx.AsyncClient, job_id: str) -> None:
        logs = (await client.get(f"{API}/jobs/{job_id}/logs?tail=3")).json()["data"]["logs"]
        assert [entry["line"] for entry in logs] == ["line 28", "line 29", "line 30"]

    async def test_since_and_tail_together(self, client: httpx.AsyncClient, job_id: str) -> None:
        params = {"since": "2026-11-25T12:00:10Z", "tail": "100"}
        logs = (await client.get(f"{API}/jobs/{job_id}/logs", params=params)).json()["data"]
        assert [entry["seq"] for entry in logs["logs"]] == list(range(10, 31))

    @pytest.mark.parametrize(
        "query", ["tail=0", "tail=abc", "tail=100001", "since=soon", "follow=maybe", "level=debug"]
    )
    async def test_bad_parameters_are_400(
        self, client: httpx.AsyncClient, job_id: str, query: str
    ) -> None:
        response = await client.get(f"{API}/jobs/{job_id}/logs?{query}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"

    async def test_another_accounts_job_is_404(
        self, app_client: httpx.AsyncClient, keys: Keys, job_id: str
    ) -> None:
        other = {"Authorization": f"Bearer {await keys.create(account='beta')}"}
        response = await app_client.get(f"{API}/jobs/{job_id}/logs", headers=other)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "JOB_NOT_FOUND"


class TestMetrics:
    async def test_buckets_samples(
        self, client: httpx.AsyncClient, db: AsyncEngine, job_id: str
    ) -> None:
        now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
        samples = [
            MetricSample(now + timedelta(seconds=s), cpu, mem, rx, tx)
            for s, cpu, mem, rx, tx in [
                (0, 100.0, 1000, 0, 0),
                (30, 300.0, 3000, 1000, 10),
                (60, 500.0, 5000, 1500, 30),
            ]
        ]
        async with database.transaction(db) as connection:
            for sample in samples:
                await repository.add_metric(connection, job_id, sample)

        response = await client.get(f"{API}/jobs/{job_id}/metrics?period=1h&resolution=1m")

        assert response.status_code == 200
        data = response.json()["data"]
        assert [point["value"] for point in data["cpu"]] == [200.0, 500.0]
        assert [point["value"] for point in data["memory"]] == [2000.0, 5000.0]
        assert [point["value"] for point in data["network"]["rx"]] == [1000.0, 500.0]
        assert [point["value"] for point in data["network"]["tx"]] == [10.0, 20.0]

    async def test_no_samples_is_empty(self, client: httpx.AsyncClient, job_id: str) -> None:
        data = (await client.get(f"{API}/jobs/{job_id}/metrics")).json()["data"]
        assert data == {"cpu": [], "memory": [], "network": {"rx": [], "tx": []}}

    @pytest.mark.parametrize(
        "query",
        ["period=2h", "resolution=10s", "period=7d&resolution=1m", "period=1h&resolution=1h&x=1"],
    )
    async def test_unsupported_values_are_400(
        self, client: httpx.AsyncClient, job_id: str, query: str
    ) -> None:
        response = await client.get(f"{API}/jobs/{job_id}/metrics?{query}")
        assert response.status_code == 400
