"""What streams read: rows after a cursor, and whether the job has ended."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.jobs.lifecycle import EVENT_FOR
from app.models import job_events, jobs, log_lines

STATUS_EVENTS = tuple(EVENT_FOR.values())
# Rows of transactions older than every one still running: no row can appear before them.
_SETTLED_TXID = sa.text("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")


async def job_status(connection: AsyncConnection, job_id: str) -> str | None:
    result = await connection.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id))
    return result.scalar_one_or_none()


async def logs_after(
    connection: AsyncConnection, job_id: str, after_seq: int, limit: int
) -> Sequence[RowMapping]:
    result = await connection.execute(
        sa.select(log_lines)
        .where(log_lines.c.job_id == job_id, log_lines.c.seq > after_seq)
        .order_by(log_lines.c.seq)
        .limit(limit)
    )
    return result.mappings().all()


async def log_start(
    connection: AsyncConnection, job_id: str, *, tail: int | None, since: datetime | None
) -> int:
    """The seq a stream starts after, so that it first sends the last `tail` lines at or
    after `since`."""
    statement = sa.select(log_lines.c.seq).where(log_lines.c.job_id == job_id)
    if since is not None:
        statement = statement.where(log_lines.c.timestamp >= since)
    if tail is not None:
        statement = statement.order_by(log_lines.c.seq.desc()).offset(tail - 1).limit(1)
        found = (await connection.execute(statement)).scalar_one_or_none()
        if found is not None:
            return int(found) - 1
    first = (
        await connection.execute(statement.order_by(None).order_by(log_lines.c.seq).limit(1))
    ).scalar_one_or_none()
    if first is not None:
        return int(first) - 1
    if since is None:
        return 0
    # Nothing stored at or after `since` yet: start after everything stored.
    last = await connection.execute(
        sa.select(sa.func.coalesce(sa.func.max(log_lines.c.seq), 0)).where(
            log_lines.c.job_id == job_id
        )
    )
    return int(last.scalar_one())


async def events_after(
    connection: AsyncConnection, job_id: str, after_seq: int, limit: int
) -> Sequence[RowMapping]:
    result = await connection.execute(
        sa.select(job_events)
        .where(job_events.c.job_id == job_id, job_events.c.seq > after_seq)
        .order_by(job_events.c.seq)
        .limit(limit)
    )
    return result.mappings().all()


def _account_events(account_id: str) -> sa.Select[tuple[object, ...]]:
    return (
        sa.select(
            job_events.c.job_id,
            job_events.c.seq,
            job_events.c.type,
            job_events.c.message,
            job_events.c.timestamp,
            job_events.c.txid,
            job_events.c.id,
            jobs.c.status,
            jobs.c.provider,
        )
        .join(jobs, jobs.c.id == job_events.c.job_id)
        .where(job_events.c.account_id == account_id, job_events.c.type.in_(STATUS_EVENTS))
    )


async def account_events_after(
    connection: AsyncConnection, account_id: str, after: tuple[int, int], limit: int
) -> Sequence[RowMapping]:
    """Status events of the account's jobs after the cursor (txid, id), in commit-safe order."""
    result = await connection.execute(
        _account_events(account_id)
        .where(
            sa.tuple_(job_events.c.txid, job_events.c.id) > sa.tuple_(*after),
            job_events.c.txid < _SETTLED_TXID,
        )
        .order_by(job_events.c.txid, job_events.c.id)
        .limit(limit)
    )
    return result.mappings().all()


async def settled_cursor(connection: AsyncConnection) -> tuple[int, int]:
    """A cursor at "now": only events of transactions that have not settled yet follow it."""
    result = await connection.execute(sa.select(_SETTLED_TXID))
    return (int(result.scalar_one()) - 1, 2**62)


async def recent_account_events(
    connection: AsyncConnection, account_id: str, limit: int
) -> Sequence[RowMapping]:
    newest = (
        _account_events(account_id)
        .order_by(job_events.c.txid.desc(), job_events.c.id.desc())
        .limit(limit)
        .subquery()
    )
    result = await connection.execute(sa.select(newest).order_by(newest.c.txid, newest.c.id))
    return result.mappings().all()
