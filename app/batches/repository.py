"""Batch queries: the batch row, and its jobs taken together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.jobs.lifecycle import TERMINAL
from app.models import job_batches, jobs


async def insert_batch(connection: AsyncConnection, values: dict[str, Any]) -> RowMapping:
    result = await connection.execute(
        sa.insert(job_batches).values(**values).returning(*job_batches.c)
    )
    return result.mappings().one()


async def get_batch(
    connection: AsyncConnection, account_id: str, batch_id: str, *, for_update: bool = False
) -> RowMapping | None:
    statement = sa.select(job_batches).where(
        job_batches.c.id == batch_id, job_batches.c.account_id == account_id
    )
    if for_update:
        statement = statement.with_for_update()
    return (await connection.execute(statement)).mappings().one_or_none()


async def list_batches(
    connection: AsyncConnection, account_id: str, *, limit: int, offset: int
) -> tuple[Sequence[RowMapping], int]:
    where = job_batches.c.account_id == account_id
    rows = await connection.execute(
        sa.select(job_batches)
        .where(where)
        .order_by(job_batches.c.created_at.desc(), job_batches.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await connection.scalar(
        sa.select(sa.func.count()).select_from(job_batches).where(where)
    )
    return rows.mappings().all(), int(total or 0)


async def job_ids(connection: AsyncConnection, batch_id: str) -> list[str]:
    result = await connection.execute(
        sa.select(jobs.c.id).where(jobs.c.batch_id == batch_id).order_by(jobs.c.batch_index)
    )
    return [row[0] for row in result]


async def status_counts(
    connection: AsyncConnection, batch_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """batch id -> status -> how many of its jobs have it."""
    result = await connection.execute(
        sa.select(jobs.c.batch_id, jobs.c.status, sa.func.count())
        .where(jobs.c.batch_id.in_(batch_ids))
        .group_by(jobs.c.batch_id, jobs.c.status)
    )
    counts: dict[str, dict[str, int]] = {batch_id: {} for batch_id in batch_ids}
    for batch_id, status, count in result:
        counts[batch_id][status] = int(count)
    return counts


async def lock_unfinished_jobs(connection: AsyncConnection, batch_id: str) -> Sequence[RowMapping]:
    """The batch's unfinished jobs, row-locked in batch order (so that two cancels of one
    batch take the locks in the same order)."""
    result = await connection.execute(
        sa.select(jobs)
        .where(jobs.c.batch_id == batch_id, jobs.c.status.not_in([s.value for s in TERMINAL]))
        .order_by(jobs.c.batch_index)
        .with_for_update()
    )
    return result.mappings().all()


async def mark_cancelled(connection: AsyncConnection, batch_id: str) -> RowMapping:
    result = await connection.execute(
        sa.update(job_batches)
        .where(job_batches.c.id == batch_id)
        .values(cancelled_at=sa.func.coalesce(job_batches.c.cancelled_at, sa.func.now()))
        .returning(*job_batches.c)
    )
    return result.mappings().one()
