"""GET /jobs/{id}/logs and /metrics over stored lines and samples."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.engine import repository
from app.telemetry.schemas import PERIODS, RESOLUTIONS
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

    @pytest.mark.parametrize("period", ["1h", "6h", "24h", "7d"])
    @pytest.mark.parametrize("resolution", ["1m", "5m", "1h", None])
    async def test_every_period_with_every_resolution(
        self, client: httpx.AsyncClient, job_id: str, period: str, resolution: str | None
    ) -> None:
        params = {"period": period} | ({"resolution": resolution} if resolution else {})
        response = await client.get(f"{API}/jobs/{job_id}/metrics", params=params)
        assert response.status_code == 200, response.text
        points = PERIODS[period] / RESOLUTIONS[resolution or "1m"]
        expected = resolution or "1m" if points <= 2016 else "5m"
        assert response.json()["meta"] == {"period": period, "resolution": expected}

    async def test_a_week_at_one_minute_is_at_most_2016_points(
        self, client: httpx.AsyncClient, db: AsyncEngine, job_id: str
    ) -> None:
        # A sample every minute for a week (and some before it), stored in one statement.
        async with database.transaction(db) as connection:
            await connection.execute(
                text(
                    "INSERT INTO metric_samples (job_id, timestamp, cpu_millicores,"
                    " memory_bytes, network_rx_bytes, network_tx_bytes)"
                    " SELECT :job_id, now() - n * interval '1 minute', n, n, 0, 0"
                    " FROM generate_series(0, 10200) AS n"
                ),
                {"job_id": job_id},
            )

        response = await client.get(f"{API}/jobs/{job_id}/metrics?period=7d")

        assert response.status_code == 200
        body = response.json()
        assert body["meta"] == {"period": "7d", "resolution": "5m"}
        for series in (body["data"]["cpu"], body["data"]["memory"], body["data"]["network"]["rx"]):
            assert len(series) == 2016
        stamps = [datetime.fromisoformat(p["timestamp"]) for p in body["data"]["cpu"]]
        assert {b - a for a, b in itertools.pairwise(stamps)} == {timedelta(minutes=5)}

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("period=2h", "period"),
            ("period=30d&resolution=1m", "period"),
            ("resolution=10s", "resolution"),
            ("period=7d&resolution=1d", "resolution"),
            ("period=1h&resolution=1h&x=1", "x"),
        ],
    )
    async def test_unsupported_values_are_400_naming_the_field(
        self, client: httpx.AsyncClient, job_id: str, query: str, field: str
    ) -> None:
        response = await client.get(f"{API}/jobs/{job_id}/metrics?{query}")
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert [detail["field"] for detail in error["details"]] == [field]
