"""Retention: old log lines, samples, events and deliveries are pruned; jobs are kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database, retention
from app.application import create_app
from app.engine import repository as engine_repository
from app.jobs import repository as jobs_repository
from app.settings import DAY, Settings, parse_duration
from providers.types import LogLine
from tests.factories import API, seed_jobs
from tests.servers import lifespan_app

NOW = datetime.now(UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


async def count(db: AsyncEngine, statement: str, **values: object) -> int:
    async with database.reading(db) as connection:
        return int(await connection.scalar(sa.text(statement), values) or 0)


async def add_telemetry(db: AsyncEngine, job_id: str, *, lines: int, events: int) -> None:
    async with database.transaction(db) as connection:
        batch = [
            LogLine(ago(50) + timedelta(seconds=i), f"line {i}", "stdout") for i in range(lines)
        ]
        await engine_repository.append_logs(connection, job_id, 0, batch)
        await connection.execute(
            sa.text(
                "INSERT INTO metric_samples (job_id, timestamp, cpu_millicores)"
                " SELECT :job_id, now() - make_interval(days => 50) + i * interval '1 s', 1"
                " FROM generate_series(1, 20) AS i"
            ),
            {"job_id": job_id},
        )
        for i in range(events):
            await jobs_repository.append_event(connection, job_id, "note", message=f"event {i}")


@pytest.fixture
def pruning(settings: Settings) -> Settings:
    # Events kept as long as the rest, so that one old job loses all three kinds.
    return settings.model_copy(update={"retention_events": 30 * DAY})


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("30d", 30 * DAY), ("12h", 43_200), ("15m", 900), ("90s", 90), ("45", 45), ("off", 0)],
    )
    def test_written_with_units(self, text: str, seconds: float) -> None:
        assert parse_duration(text) == seconds

    def test_settings_read_them(self) -> None:
        settings = Settings(retention_logs="7d", retention_events="0", retention_interval="10m")
        assert (settings.retention_logs, settings.retention_events) == (7 * DAY, 0)
        assert settings.retention_interval == 600

    def test_nonsense_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not a duration"):
            Settings(retention_logs="a month")


class TestPruning:
    async def test_old_rows_go_new_rows_and_running_jobs_stay(
        self, client: httpx.AsyncClient, db: AsyncEngine, pruning: Settings
    ) -> None:
        old, recent, running = await seed_jobs(
            db,
            "alpha",
            [
                {"status": "completed", "created_at": ago(60), "ended_at": ago(40)},
                {"status": "completed", "created_at": ago(60), "ended_at": ago(1)},
                {"status": "running", "created_at": ago(100)},
            ],
        )
        for job_id in (old, recent, running):
            await add_telemetry(db, job_id, lines=23, events=4)

        pruned = await retention.prune(db, pruning, batch_rows=5)
        assert pruned is not None
        assert pruned.rows["logs"] == 23 and pruned.jobs == 1

        lines = "SELECT count(*) FROM log_lines WHERE job_id = :job_id"
        samples = "SELECT count(*) FROM metric_samples WHERE job_id = :job_id"
        events = "SELECT count(*) FROM job_events WHERE job_id = :job_id"
        assert await count(db, lines, job_id=old) == 0
        assert await count(db, samples, job_id=old) == 0
        assert await count(db, events, job_id=old) == 1, "the last event stays"
        for kept in (recent, running):
            assert await count(db, lines, job_id=kept) == 23
            assert await count(db, samples, job_id=kept) == 20
            assert await count(db, events, job_id=kept) == 5  # `created` and four notes

        expired = await client.get(f"{API}/jobs/{old}/logs")
        assert expired.status_code == 410
        assert expired.json() == {
            "success": False,
            "error": {
                "code": "LOGS_EXPIRED",
                "message": f"The log lines of job {old} were removed by the retention policy.",
                "details": [],
            },
        }
        assert (await client.get(f"{API}/jobs/{old}/logs?follow=true")).status_code == 410
        job = await client.get(f"{API}/jobs/{old}")
        assert job.status_code == 200 and job.json()["data"]["status"] == "completed"
        assert len((await client.get(f"{API}/jobs/{recent}/logs")).json()["data"]["logs"]) == 23

        # The running job's events go on from where they were.
        async with database.transaction(db) as connection:
            event = await jobs_repository.append_event(connection, running, "note")
        assert event["seq"] == 6

        again = await retention.prune(db, pruning)
        assert again is not None and again.rows["logs"] == 0

    async def test_a_job_with_no_lines_is_not_expired_before_its_time(
        self, client: httpx.AsyncClient, db: AsyncEngine, pruning: Settings
    ) -> None:
        [quiet] = await seed_jobs(
            db, "alpha", [{"status": "failed", "created_at": ago(2), "ended_at": ago(1)}]
        )
        await retention.prune(db, pruning)
        response = await client.get(f"{API}/jobs/{quiet}/logs")
        assert response.status_code == 200 and response.json()["data"]["logs"] == []

    async def test_finished_deliveries_go_with_their_attempts(
        self, client: httpx.AsyncClient, db: AsyncEngine, pruning: Settings
    ) -> None:
        async with database.transaction(db) as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO webhook_endpoints (id, account_id, url, events, secret)"
                    " SELECT 'whe_1', id, 'https://example.com/h', ARRAY['job.completed'], 's'"
                    " FROM accounts WHERE name = 'alpha'"
                )
            )
            for delivery, status, days in [
                ("whd_old", "succeeded", 40),
                ("whd_old_failed", "failed", 40),
                ("whd_old_pending", "pending", 40),
                ("whd_new", "succeeded", 1),
            ]:
                await connection.execute(
                    sa.text(
                        "INSERT INTO webhook_deliveries"
                        " (id, endpoint_id, event_type, payload, status, created_at)"
                        " VALUES (:id, 'whe_1', 'job.completed', '{}', :status,"
                        " now() - make_interval(days => :days))"
                    ),
                    {"id": delivery, "status": status, "days": days},
                )
                await connection.execute(
                    sa.text(
                        "INSERT INTO webhook_attempts"
                        " (delivery_id, attempted_at, status_code, duration_ms)"
                        " VALUES (:id, now(), 200, 5)"
                    ),
                    {"id": delivery},
                )

        pruned = await retention.prune(db, pruning, batch_rows=1)
        assert pruned is not None and pruned.rows["deliveries"] == 2
        async with database.reading(db) as connection:
            left = set(
                (await connection.scalars(sa.text("SELECT id FROM webhook_deliveries"))).all()
            )
            attempts = set(
                (
                    await connection.scalars(sa.text("SELECT delivery_id FROM webhook_attempts"))
                ).all()
            )
        assert left == attempts == {"whd_old_pending", "whd_new"}

    async def test_one_process_at_a_time(self, db: AsyncEngine, pruning: Settings) -> None:
        async with db.connect() as holder:
            await holder.execute(
                sa.text("SELECT pg_advisory_lock(:key)"), {"key": retention.LOCK_KEY}
            )
            assert await retention.prune(db, pruning) is None
            await holder.execute(
                sa.text("SELECT pg_advisory_unlock(:key)"), {"key": retention.LOCK_KEY}
            )
        assert await retention.prune(db, pruning) is not None

    async def test_the_gateway_prunes_in_the_background(
        self, client: httpx.AsyncClient, db: AsyncEngine, settings: Settings
    ) -> None:
        [old] = await seed_jobs(
            db, "alpha", [{"status": "completed", "created_at": ago(9), "ended_at": ago(8)}]
        )
        await add_telemetry(db, old, lines=3, events=0)
        frequent = settings.model_copy(
            update={"retention_logs": 7 * DAY, "retention_interval": 0.2}
        )
        async with (
            lifespan_app(create_app(frequent)) as app,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://gateway",
                headers=client.headers,
            ) as background,
        ):
            async with asyncio.timeout(30):
                while (await background.get(f"{API}/jobs/{old}/logs")).status_code != 410:
                    await asyncio.sleep(0.1)
