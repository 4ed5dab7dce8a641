"""Builders for test data, through the same services the gateway uses."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.auth import scopes, service
from app.jobs import repository
from app.jobs import service as job_service
from app.jobs.lifecycle import JobStatus
from app.jobs.record import JobRecord

API = "/api/plugin-core"


def job_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "provider": "local",
        "image": "busybox:latest",
        "cpu": 500,
        "memory": "64Mi",
        "storage": "1Gi",
        "duration": 60,
    }
    spec.update(overrides)
    return spec


class Keys:
    def __init__(self, db: AsyncEngine):
        self.db = db

    async def create(
        self,
        *,
        account: str = "alpha",
        scope: Sequence[str] = ("jobs:read", "jobs:write"),
        budget_usd: Decimal | None = None,
        budget_period: str | None = None,
    ) -> str:
        async with database.transaction(self.db) as connection:
            created = await service.create_key(
                connection,
                name="test",
                account=account,
                scopes=scopes.parse_scopes(list(scope)),
                budget_usd=budget_usd,
                budget_period=budget_period,
            )
        return created.secret

    async def revoke(self, secret: str) -> None:
        async with database.transaction(self.db) as connection:
            rows = await service.list_keys(connection)
            key_id = next(row["id"] for row in rows if secret.startswith(row["prefix"]))
            await service.revoke_key(connection, key_id)


async def submit(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/jobs", json=job_spec(**overrides))
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()["data"]
    return job


async def move_job(db: AsyncEngine, job_id: str, *path: JobStatus) -> None:
    """Drive a job through states as the engine would, recording each event."""
    async with database.transaction(db) as connection:
        row = await repository.get_job_by_id(connection, job_id)
        assert row is not None
        job = JobRecord.from_row(row)
        for status in path:
            changes = {"started_at": repository.NOW} if status is JobStatus.RUNNING else None
            job = await job_service.transition(connection, job, status, changes=changes)


async def seed_jobs(db: AsyncEngine, account: str, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert jobs straight into the store, with chosen timestamps, states and providers."""
    import sqlalchemy as sa

    from app import ids
    from app.models import accounts

    async with database.transaction(db) as connection:
        account_id = (
            await connection.execute(sa.select(accounts.c.id).where(accounts.c.name == account))
        ).scalar_one()
        job_ids = []
        for values in rows:
            row = await repository.insert_job(
                connection,
                {
                    "id": ids.new_id("job"),
                    "account_id": account_id,
                    "provider": "local",
                    "status": "pending",
                    "image": "busybox:latest",
                    "cpu": 500,
                    "memory": "64Mi",
                    "storage": "1Gi",
                    "duration": 60,
                    "config": {},
                    "results": {},
                    **values,
                },
            )
            assert row is not None, "a job stored without a quota place conflicts with none"
            job_ids.append(row["id"])
    return job_ids
