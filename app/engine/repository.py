"""The engine's queries: claiming jobs, holding leases, storing what providers report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.jobs import repository as jobs_repository
from app.models import account_limits, accounts, job_batches, jobs, log_lines, metric_samples
from providers.types import LogLine, MetricSample

UNFINISHED = ("pending", "scheduled", "running", "cancelling")

# Jobs an engine must act on: unfinished ones, and finished ones whose workload still holds
# something (a container, a lease) because the process ended before releasing it.
NEEDS_ENGINE = sa.or_(jobs.c.status.in_(UNFINISHED), jobs.c.needs_release)

# A batch job waiting for its turn: pending, and taken by no engine yet. It may be claimed
# only while its batch has fewer than `concurrency` jobs holding a turn (TAKING_TURN).
WAITING_IN_BATCH = sa.and_(
    jobs.c.batch_id.is_not(None), jobs.c.status == "pending", jobs.c.engine_owner.is_(None)
)
TAKING_TURN = sa.or_(
    jobs.c.status.in_(("scheduled", "running", "cancelling")),
    sa.and_(jobs.c.status == "pending", jobs.c.engine_owner.is_not(None)),
)


def _lease(seconds: float) -> sa.ColumnElement[Any]:
    return sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)


# Claims from every engine take turns on this advisory lock, so that the jobs an account
# already has driven are counted exactly (no two engines both see a free slot and take it).
CLAIM_LOCK = 0x636C61696D  # "claim"

# A job some engine drives right now: it holds an engine slot of its account.
DRIVEN = sa.and_(
    NEEDS_ENGINE, jobs.c.engine_owner.is_not(None), jobs.c.lease_expires_at >= sa.func.now()
)
CLAIMABLE = sa.and_(
    NEEDS_ENGINE,
    sa.or_(jobs.c.engine_owner.is_(None), jobs.c.lease_expires_at < sa.func.now()),
    sa.not_(WAITING_IN_BATCH),
)


def _driven_per_account() -> sa.CTE:
    return (
        sa.select(jobs.c.account_id, sa.func.count().label("driven"))
        .where(DRIVEN)
        .group_by(jobs.c.account_id)
        .cte("driven")
    )


def _slot_cap(default_slots: int | None) -> sa.ColumnElement[Any]:
    """An account's engine-slot cap: its own, else the operator's default; NULL: no cap. An
    override of 0 means no cap, whatever the default (as everywhere in account_limits)."""
    own = account_limits.c.max_engine_slots
    return sa.case(
        (own.is_(None), sa.literal(default_slots, sa.Integer)),
        (own == 0, sa.null()),
        else_=own,
    )


async def claim(
    connection: AsyncConnection,
    owner: str,
    *,
    limit: int,
    lease_seconds: float,
    default_slots: int | None = None,
) -> list[RowMapping]:
    """Take up to `limit` unfinished jobs that no live engine holds, and return their rows as
    claimed. SKIP LOCKED skips jobs a driver has locked for a moment.

    Accounts take turns: an account's n-th waiting job (oldest first) is due after its jobs
    already driven plus n-1, so an account with a long queue or many running jobs goes
    after one with none, and `max_engine_slots` (`default_slots` unless the account has its
    own) caps the jobs an account has driven at once. Jobs that already started and lost
    their engine are taken over first, whatever the cap: their workloads run anyway. Batch
    jobs that wait for their turn come after the others, as their batches' concurrency and
    their accounts' caps allow."""
    await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK)))
    driven = _driven_per_account()
    waiting = jobs.c.status == "pending"
    candidates = (
        sa.select(
            jobs.c.id,
            jobs.c.account_id,
            jobs.c.created_at,
            waiting.label("waiting"),
            sa.func.row_number()
            .over(partition_by=(jobs.c.account_id, waiting), order_by=jobs.c.created_at)
            .label("rank"),
        )
        .where(CLAIMABLE)
        .subquery("candidates")
    )
    turn = sa.case(
        (candidates.c.waiting, sa.func.coalesce(driven.c.driven, 0) + candidates.c.rank),
        else_=0,
    )
    cap = _slot_cap(default_slots)
    ranked = (
        sa.select(candidates.c.id, candidates.c.created_at, turn.label("turn"))
        .select_from(
            candidates.outerjoin(driven, driven.c.account_id == candidates.c.account_id).outerjoin(
                account_limits, account_limits.c.account_id == candidates.c.account_id
            )
        )
        .where(sa.or_(sa.not_(candidates.c.waiting), cap.is_(None), turn <= cap))
        .subquery("ranked")
    )
    # The candidates come from one snapshot; the claim conditions are checked again on each
    # row as it is locked, in case another engine took it meanwhile.
    chosen = (
        sa.select(jobs.c.id)
        .join(ranked, ranked.c.id == jobs.c.id)
        .where(CLAIMABLE)
        .order_by(ranked.c.turn, ranked.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=jobs)
    )
    claimed = await _take(connection, owner, chosen, lease_seconds)
    if len(claimed) < limit:
        claimed += await _claim_batch_turns(
            connection, owner, limit - len(claimed), lease_seconds, default_slots
        )
    return claimed


async def _take(
    connection: AsyncConnection, owner: str, candidates: sa.Select[Any], lease_seconds: float
) -> list[RowMapping]:
    chosen = candidates.scalar_subquery()
    result = await connection.execute(
        sa.update(jobs)
        .where(jobs.c.id.in_(chosen))
        .values(engine_owner=owner, lease_expires_at=_lease(lease_seconds))
        .returning(*jobs.c)
    )
    return list(result.mappings())


async def _claim_batch_turns(
    connection: AsyncConnection,
    owner: str,
    limit: int,
    lease_seconds: float,
    default_slots: int | None,
) -> list[RowMapping]:
    """Start batch jobs while their batch has free turns.

    Engines count a batch's turns one at a time: each holds the batch's row lock while it
    counts and claims, and counts in a statement that starts after the lock is granted, so
    it sees every claim committed before (READ COMMITTED takes a snapshot per statement).
    """
    batches = await connection.execute(
        sa.select(job_batches.c.id, job_batches.c.concurrency, job_batches.c.account_id)
        .where(job_batches.c.id.in_(sa.select(jobs.c.batch_id).where(WAITING_IN_BATCH)))
        .order_by(job_batches.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    found = batches.all()
    if not found:
        return []
    concurrency = {batch_id: allowed for batch_id, allowed, _ in found}
    account_of = {batch_id: account_id for batch_id, _, account_id in found}
    room = await _account_room(connection, set(account_of.values()), default_slots)
    active = await connection.execute(
        sa.select(jobs.c.batch_id, sa.func.count())
        .where(jobs.c.batch_id.in_(list(concurrency)), TAKING_TURN)
        .group_by(jobs.c.batch_id)
    )
    taken: dict[str, int] = {batch_id: count for batch_id, count in active.all()}
    claimed: list[RowMapping] = []
    for batch_id, allowed in concurrency.items():
        account_id = account_of[batch_id]
        turns = min(allowed - taken.get(batch_id, 0), limit - len(claimed))
        left = room[account_id]
        if left is not None:
            turns = min(turns, left)
        if turns <= 0:
            continue
        waiting = (
            sa.select(jobs.c.id)
            .where(jobs.c.batch_id == batch_id, WAITING_IN_BATCH)
            .order_by(jobs.c.batch_index)
            .limit(turns)
        )
        took = await _take(
            connection, owner, waiting.with_for_update(skip_locked=True), lease_seconds
        )
        left = room[account_id]
        if left is not None:
            room[account_id] = left - len(took)
        claimed += took
    return claimed


async def _account_room(
    connection: AsyncConnection, account_ids: set[str], default_slots: int | None
) -> dict[str, int | None]:
    """How many more jobs each account may have driven (None: no cap). Counted after the
    claim lock is granted and after this claim's own takes, so it sees every claim made."""
    driven = _driven_per_account()
    result = await connection.execute(
        sa.select(accounts.c.id, _slot_cap(default_slots), sa.func.coalesce(driven.c.driven, 0))
        .select_from(
            accounts.outerjoin(driven, driven.c.account_id == accounts.c.id).outerjoin(
                account_limits, account_limits.c.account_id == accounts.c.id
            )
        )
        .where(accounts.c.id.in_(sorted(account_ids)))
    )
    return {
        account_id: None if cap is None else max(cap - count, 0)
        for account_id, cap, count in result.all()
    }


async def renew(
    connection: AsyncConnection, owner: str, job_ids: Sequence[str], *, lease_seconds: float
) -> set[str]:
    """Extend the leases this engine still holds; returns the ids another engine owns now
    (a job this engine let go, being finished with it, is no one's and not among them)."""
    if not job_ids:
        return set()
    renewed = await connection.execute(
        sa.update(jobs)
        .where(jobs.c.id.in_(job_ids), jobs.c.engine_owner == owner)
        .values(lease_expires_at=_lease(lease_seconds))
        .returning(jobs.c.id)
    )
    missing = set(job_ids) - {row[0] for row in renewed}
    if not missing:
        return set()
    taken = await connection.execute(
        sa.select(jobs.c.id).where(jobs.c.id.in_(missing), jobs.c.engine_owner.is_not(None))
    )
    return {row[0] for row in taken}


async def let_go(connection: AsyncConnection, owner: str, job_ids: Sequence[str]) -> None:
    """Give jobs back (on shutdown, or once finished) so that any engine may take them."""
    if job_ids:
        await connection.execute(
            sa.update(jobs)
            .where(jobs.c.id.in_(job_ids), jobs.c.engine_owner == owner)
            .values(engine_owner=None, lease_expires_at=None)
        )


async def lock_owned(connection: AsyncConnection, owner: str, job_id: str) -> RowMapping | None:
    """The job, row-locked, if this engine still holds it (a fence against a lapsed lease)."""
    result = await connection.execute(
        sa.select(jobs).where(jobs.c.id == job_id, jobs.c.engine_owner == owner).with_for_update()
    )
    return result.mappings().one_or_none()


async def read(connection: AsyncConnection, job_id: str) -> RowMapping | None:
    result = await connection.execute(sa.select(jobs).where(jobs.c.id == job_id))
    return result.mappings().one_or_none()


async def append_logs(
    connection: AsyncConnection, job_id: str, after_seq: int, lines: Sequence[LogLine]
) -> int:
    """Store lines with the sequence numbers after `after_seq` with one COPY, and announce
    them with one NOTIFY (sent at commit); returns the last sequence number."""
    if not lines:
        return after_seq
    # The NOTIFY goes first: it also opens the driver's transaction, which COPY then joins.
    await jobs_repository.notify_job(connection, job_id)
    raw = await connection.get_raw_connection()
    records = [
        (job_id, seq, line.timestamp, line.stream, line.line)
        for seq, line in enumerate(lines, start=after_seq + 1)
    ]
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        log_lines.name, records=records, columns=_LOG_COLUMNS
    )
    return after_seq + len(lines)


_LOG_COLUMNS = ("job_id", "seq", "timestamp", "stream", "line")


async def add_metric(connection: AsyncConnection, job_id: str, sample: MetricSample) -> None:
    await connection.execute(
        pg_insert(metric_samples)
        .values(
            job_id=job_id,
            timestamp=sample.timestamp,
            cpu_millicores=sample.cpu_millicores,
            memory_bytes=sample.memory_bytes,
            network_rx_bytes=sample.network_rx_bytes,
            network_tx_bytes=sample.network_tx_bytes,
        )
        .on_conflict_do_nothing()
    )
