"""SQL for job outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import job_outputs, jobs
from app.outputs.packing import Packed


async def save(connection: AsyncConnection, job_id: str, packed: Packed) -> None:
    """The job's output row; a second collection (an engine that took over) replaces it."""
    values = {"job_id": job_id, **asdict(packed)}
    statement = pg_insert(job_outputs).values(values)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[job_outputs.c.job_id],
            set_={name: statement.excluded[name] for name in values if name != "job_id"},
        )
    )


async def get_for_account(
    connection: AsyncConnection, account_id: str, job_id: str
) -> RowMapping | None:
    """The job's status and output (NULL columns when it has none); None when the job is
    missing or another account's."""
    result = await connection.execute(
        sa.select(jobs.c.id, jobs.c.account_id, jobs.c.status, job_outputs)
        .select_from(jobs.outerjoin(job_outputs, job_outputs.c.job_id == jobs.c.id))
        .where(jobs.c.id == job_id, jobs.c.account_id == account_id)
    )
    return result.mappings().first()


async def get_for_job(connection: AsyncConnection, job_id: str) -> RowMapping | None:
    """The output of a job, whoever owns it (a signed link names the job)."""
    result = await connection.execute(sa.select(job_outputs).where(job_outputs.c.job_id == job_id))
    return result.mappings().first()


async def due_for_removal(
    connection: AsyncConnection, older_than_seconds: float, limit: int
) -> Sequence[RowMapping]:
    result = await connection.execute(
        sa.select(job_outputs.c.job_id, job_outputs.c.store_key)
        .where(
            job_outputs.c.created_at
            < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds)
        )
        .order_by(job_outputs.c.created_at)
        .limit(limit)
    )
    return result.mappings().all()


async def delete(connection: AsyncConnection, job_id: str) -> None:
    await connection.execute(sa.delete(job_outputs).where(job_outputs.c.job_id == job_id))


async def job_status(connection: AsyncConnection, job_id: str) -> str | None:
    """The job's status; None when there is no such job."""
    result = await connection.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id))
    status: str | None = result.scalar_one_or_none()
    return status
