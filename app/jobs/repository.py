"""Every job query. Account-owned queries always take the account: another account's job
and a missing job look the same from here."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import database
from app.accounts import repository as accounts_repository
from app.jobs import summary
from app.models import job_counts, job_events, jobs
from app.models.jobs import is_active
from app.notify import NOTIFY_CHANNEL
from app.webhooks import repository as webhooks_repository

CREATED_EVENT_TYPE = "job.created"

# The transaction's start time, as a value: a job's timestamps match its events' exactly.
NOW = sa.func.now()

# Once an account's count deltas pile past this, a list request folds them together.
COMPACT_COUNTS_AFTER = 256

SORT_COLUMNS: dict[str, sa.Column[Any]] = {
    "createdAt": jobs.c.created_at,
    "startedAt": jobs.c.started_at,
    "endedAt": jobs.c.ended_at,
    "status": jobs.c.status,
    "provider": jobs.c.provider,
}
_NULLABLE_SORTS = {"startedAt", "endedAt"}


_TIME = jobs.c.created_at.type


@dataclass(frozen=True)
class JobFilter:
    account_id: str
    statuses: Sequence[str] | None = None
    providers: Sequence[str] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    batch_id: str | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        clauses = [jobs.c.account_id == self.account_id]
        if self.statuses:
            clauses.append(jobs.c.status.in_(self.statuses))
        if self.providers:
            clauses.append(jobs.c.provider.in_(self.providers))
        if self.created_from is not None:
            clauses.append(jobs.c.created_at >= self.created_from)
        if self.created_to is not None:
            clauses.append(jobs.c.created_at < self.created_to)
        if self.batch_id is not None:
            clauses.append(jobs.c.batch_id == self.batch_id)
        return clauses

    # The same conditions as where(), as bound parameters: which filters are given (the
    # shape) picks a statement built once, params() fills it.
    def shape(self) -> tuple[bool, ...]:
        return (
            bool(self.statuses),
            bool(self.providers),
            self.created_from is not None,
            self.created_to is not None,
            self.batch_id is not None,
        )

    def params(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "statuses": list(self.statuses or ()),
            "providers": list(self.providers or ()),
            "created_from": self.created_from,
            "created_to": self.created_to,
            "batch_id": self.batch_id,
        }

    @staticmethod
    def bound_where(shape: tuple[bool, ...]) -> list[sa.ColumnElement[bool]]:
        statuses, providers, created_from, created_to, batch_id = shape
        clauses = [jobs.c.account_id == sa.bindparam("account_id", type_=jobs.c.account_id.type)]
        if statuses:
            clauses.append(jobs.c.status.in_(sa.bindparam("statuses", expanding=True)))
        if providers:
            clauses.append(jobs.c.provider.in_(sa.bindparam("providers", expanding=True)))
        if created_from:
            clauses.append(jobs.c.created_at >= sa.bindparam("created_from", type_=_TIME))
        if created_to:
            clauses.append(jobs.c.created_at < sa.bindparam("created_to", type_=_TIME))
        if batch_id:
            clauses.append(jobs.c.batch_id == sa.bindparam("batch_id", type_=jobs.c.batch_id.type))
        return clauses


# Statements on the request path are built once: building one (and its cache key) costs more
# than running it. Values travel as bound parameters.
@functools.cache
def _insert_job_statement(columns: tuple[str, ...], guarded: bool) -> sa.Select[Any]:
    values = sa.select(*(sa.bindparam(name, type_=jobs.c[name].type) for name in columns))
    if guarded:
        values = values.where(
            ~accounts_repository.holds_places_from(
                sa.bindparam("account_id", type_=sa.Text),
                sa.bindparam("places_below", type_=sa.BigInteger),
            )
        )
    new_job = (
        pg_insert(jobs)
        .from_select(list(columns), values)
        # Another active job of the account holds this place: nothing is inserted (and
        # nothing selected from the new row below), the caller tries another place.
        .on_conflict_do_nothing(
            index_elements=[jobs.c.account_id, jobs.c.quota_slot],
            index_where=is_active(jobs.c.status),
        )
        .returning(*jobs.c)
        .cte("new_job")
    )
    created_event = sa.insert(job_events).from_select(
        ["job_id", "account_id", "seq", "type", "timestamp"],
        sa.select(
            new_job.c.id,
            new_job.c.account_id,
            sa.literal(1),
            sa.literal("created"),
            new_job.c.created_at,
        ),
    )
    return sa.select(
        new_job,
        *notifications(new_job.c.id, new_job.c.account_id),
        # The webhook outbox needs these next, in the same transaction: asked here, no
        # separate round trip.
        webhooks_repository.subscribed_ids(new_job.c.account_id, CREATED_EVENT_TYPE).label(
            "webhook_endpoint_ids"
        ),
    ).add_cte(created_event.cte("created_event"))


async def insert_job(
    connection: AsyncConnection, values: dict[str, Any], *, places_below: int | None = None
) -> RowMapping | None:
    """Insert the job and its `created` event in one statement (one round trip); the row
    also carries `webhook_endpoint_ids`, the endpoints subscribed to job.created (or None).

    None, with nothing stored, when another active job of the account holds the job's
    `quota_slot`, or, given `places_below`, when an active job of the account holds a place
    at or above it (or none)."""
    statement = _insert_job_statement(tuple(sorted(values)), places_below is not None)
    params = values if places_below is None else {**values, "places_below": places_below}
    result = await connection.execute(statement, params)
    row: RowMapping | None = result.mappings().one_or_none()
    return row


_GET_JOB = sa.select(jobs).where(
    jobs.c.id == sa.bindparam("job_id"), jobs.c.account_id == sa.bindparam("account_id")
)
_GET_JOB_FOR_UPDATE = _GET_JOB.with_for_update()
_LIST_EVENTS = (
    sa.select(job_events)
    .where(job_events.c.job_id == sa.bindparam("job_id"))
    .order_by(job_events.c.seq)
)


async def get_job(
    connection: AsyncConnection, account_id: str, job_id: str, *, for_update: bool = False
) -> RowMapping | None:
    statement = _GET_JOB_FOR_UPDATE if for_update else _GET_JOB
    result = await connection.execute(statement, {"job_id": job_id, "account_id": account_id})
    return result.mappings().one_or_none()


async def list_events(connection: AsyncConnection, job_id: str) -> Sequence[RowMapping]:
    result = await connection.execute(_LIST_EVENTS, {"job_id": job_id})
    return result.mappings().all()


async def append_event(
    connection: AsyncConnection,
    job_id: str,
    event_type: str,
    *,
    message: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> RowMapping:
    """Append an event with the job's next sequence number, timed `at` (by default the
    transaction's start). The caller holds the job's row lock, so sequence numbers never
    collide."""
    next_seq = (
        sa.select(sa.func.coalesce(sa.func.max(job_events.c.seq), 0) + 1)
        .where(job_events.c.job_id == job_id)
        .scalar_subquery()
    )
    account = sa.select(jobs.c.account_id).where(jobs.c.id == job_id).scalar_subquery()
    result = await connection.execute(
        sa.insert(job_events)
        .values(
            job_id=job_id,
            account_id=account,
            seq=next_seq,
            type=event_type,
            message=message,
            data=data,
            timestamp=NOW if at is None else at,
        )
        .returning(*job_events.c, *notifications(job_events.c.job_id, job_events.c.account_id))
    )
    return result.mappings().one()


# Listeners learn that a job (and its account) has new rows; streams then read the rows.
def notifications(
    job_id: sa.ColumnElement[Any], account_id: sa.ColumnElement[Any]
) -> tuple[sa.ColumnElement[Any], ...]:
    """Expressions that queue the notifications of a row about a job, to add to the
    statement writing it. They are sent when the transaction commits (never on rollback), and
    Postgres folds repeats within one transaction."""
    return (
        sa.func.pg_notify(NOTIFY_CHANNEL, sa.literal("job:") + job_id).label("notified_job"),
        sa.func.pg_notify(NOTIFY_CHANNEL, sa.literal("account:") + account_id).label(
            "notified_account"
        ),
    )


async def notify_job(connection: AsyncConnection, job_id: str) -> None:
    await connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, f"job:{job_id}")))


async def update_job(
    connection: AsyncConnection, job_id: str, values: dict[str, Any]
) -> RowMapping:
    result = await connection.execute(
        sa.update(jobs)
        .where(jobs.c.id == job_id)
        .values(**values, updated_at=sa.func.now())
        .returning(*jobs.c)
    )
    return result.mappings().one()


def _after(
    sort_key: list[sa.ColumnElement[Any]], values: list[Any], descending: bool, nullable_first: bool
) -> sa.ColumnElement[bool]:
    """Rows strictly after `values` in the order (sort_key..., all one direction).

    Postgres sorts NULL above every value; a nullable leading column is compared by hand,
    the rest with a row comparison that the (account, column, created_at, id) indexes serve.
    """
    rest = sa.tuple_(*sort_key[1:])
    rest_values = sa.tuple_(*[_value(value) for value in values[1:]])
    rest_after = rest < rest_values if descending else rest > rest_values
    if not nullable_first:
        key = sa.tuple_(*sort_key)
        key_values = sa.tuple_(*[_value(value) for value in values])
        return key < key_values if descending else key > key_values
    column, value = sort_key[0], values[0]
    if value is None:
        ties = sa.and_(column.is_(None), rest_after)
        return sa.or_(column.is_not(None), ties) if descending else ties
    ties = sa.and_(column == value, rest_after)
    beyond = column < value if descending else sa.or_(column > value, column.is_(None))
    return sa.or_(beyond, ties)


def _value(value: Any) -> sa.ColumnElement[Any]:
    return value if isinstance(value, sa.BindParameter) else sa.literal(value)


# What a listed job shows (every sort key among them): decoding config and results for every
# row would be wasted work. Money as float8: the summary shows floats, the driver decodes a
# float8 for a fraction of a numeric's Decimal, and PostgreSQL's cast rounds as float() does.
_AS_FLOAT = frozenset({"cost_current", "cost_projected", "usd_per_hour"})
_SUMMARY_COLUMNS = tuple(
    sa.cast(jobs.c[name], sa.Double()).label(name) if name in _AS_FLOAT else jobs.c[name]
    for name in summary.COLUMNS
)


async def list_jobs(
    connection: AsyncConnection,
    job_filter: JobFilter,
    *,
    sort_field: str,
    descending: bool,
    limit: int,
    offset: int = 0,
    after: list[Any] | None = None,
) -> Sequence[Any]:
    """One page plus one row, so the caller knows whether another page follows: rows with
    the summary columns, by name (asyncpg Records on a reading connection)."""
    after_shape = None if after is None else after[0] is None
    statement = _list_statement(sort_field, descending, job_filter.shape(), after_shape)
    params = {**job_filter.params(), "limit": limit + 1, "offset": offset}
    if after is not None:
        params.update({f"after_{index}": value for index, value in enumerate(after)})
    return await database.fetch(connection, statement, params)


# A page's statement is built once per shape (sort, which filters, whether a cursor and
# whether its leading value is NULL); every value is a bound parameter.
@functools.cache
def _list_statement(
    sort_field: str, descending: bool, shape: tuple[bool, ...], after_null: bool | None
) -> sa.Select[Any]:
    sort_key = sort_key_columns(sort_field)
    statement = sa.select(*_SUMMARY_COLUMNS).where(*JobFilter.bound_where(shape))
    if after_null is not None:
        values = [
            None if index == 0 and after_null else sa.bindparam(f"after_{index}", type_=column.type)
            for index, column in enumerate(sort_key)
        ]
        statement = statement.where(
            _after(sort_key, values, descending, sort_field in _NULLABLE_SORTS)
        )
    order = [
        (column.desc().nulls_first() if descending else column.asc().nulls_last())
        for column in sort_key
    ]
    return (
        statement.order_by(*order)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .offset(sa.bindparam("offset", type_=sa.Integer))
    )


def sort_key_columns(sort_field: str) -> list[sa.ColumnElement[Any]]:
    column = SORT_COLUMNS[sort_field]
    if sort_field == "createdAt":
        return [jobs.c.created_at, jobs.c.id]
    return [column, jobs.c.created_at, jobs.c.id]


async def count_jobs(connection: AsyncConnection, job_filter: JobFilter) -> int:
    """The total for a filter: from the running totals when no date bounds and no batch
    are given (a batch is small enough to count)."""
    shape = job_filter.shape()
    params = job_filter.params()
    if any(shape[2:]):
        result = await connection.execute(_count_statement(shape), params)
        return int(result.scalar_one())
    [running_total] = await database.fetch(connection, _running_total_statement(shape), params)
    total, rows = cast(tuple[int, int], tuple(running_total.values()))
    if rows > COMPACT_COUNTS_AFTER:
        await compact_counts(connection, job_filter.account_id)
    return int(total)


@functools.cache
def _count_statement(shape: tuple[bool, ...]) -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(jobs).where(*JobFilter.bound_where(shape))


@functools.cache
def _running_total_statement(shape: tuple[bool, ...]) -> sa.Select[Any]:
    statuses, providers = shape[:2]
    clauses = [job_counts.c.account_id == sa.bindparam("account_id", type_=sa.Text)]
    if statuses:
        clauses.append(job_counts.c.status.in_(sa.bindparam("statuses", expanding=True)))
    if providers:
        clauses.append(job_counts.c.provider.in_(sa.bindparam("providers", expanding=True)))
    return sa.select(sa.func.coalesce(sa.func.sum(job_counts.c.n), 0), sa.func.count()).where(
        *clauses
    )


async def compact_counts(connection: AsyncConnection, account_id: str) -> None:
    """Fold an account's count deltas into one row per (provider, status).

    Rows a concurrent transaction adds are invisible to the DELETE and stay as deltas, so no
    count is lost; the advisory lock keeps two compactions of one account from interleaving.
    """
    locked = await connection.scalar(
        sa.select(sa.func.pg_try_advisory_xact_lock(sa.func.hashtext("job_counts:" + account_id)))
    )
    if not locked:
        return
    await connection.execute(
        sa.text(
            """
            WITH folded AS (
                DELETE FROM job_counts WHERE account_id = :account_id
                RETURNING account_id, provider, status, n
            )
            INSERT INTO job_counts (account_id, provider, status, n)
            SELECT account_id, provider, status, sum(n) FROM folded
            GROUP BY account_id, provider, status HAVING sum(n) <> 0
            """
        ),
        {"account_id": account_id},
    )


async def get_job_by_id(
    connection: AsyncConnection, job_id: str, *, for_update: bool = True
) -> RowMapping | None:
    """A job whatever its account: for the engine, which acts for every account."""
    statement = sa.select(jobs).where(jobs.c.id == job_id)
    if for_update:
        statement = statement.with_for_update()
    result = await connection.execute(statement)
    return result.mappings().one_or_none()
