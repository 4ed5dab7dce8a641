"""Every webhook query: endpoints, the delivery outbox, attempts, and claiming due work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import webhook_attempts, webhook_deliveries, webhook_endpoints
from app.notify import NOTIFY_CHANNEL

NOTIFY_PAYLOAD = "webhooks"


async def insert_endpoint(connection: AsyncConnection, values: dict[str, Any]) -> RowMapping:
    result = await connection.execute(
        sa.insert(webhook_endpoints).values(**values).returning(*webhook_endpoints.c)
    )
    return result.mappings().one()


async def get_endpoint(
    connection: AsyncConnection, account_id: str, endpoint_id: str, *, for_update: bool = False
) -> RowMapping | None:
    statement = sa.select(webhook_endpoints).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.account_id == account_id
    )
    if for_update:
        statement = statement.with_for_update()
    return (await connection.execute(statement)).mappings().one_or_none()


async def list_endpoints(
    connection: AsyncConnection, account_id: str, *, limit: int, offset: int
) -> tuple[Sequence[RowMapping], int]:
    where = webhook_endpoints.c.account_id == account_id
    rows = await connection.execute(
        sa.select(webhook_endpoints)
        .where(where)
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
        .limit(limit)
        .offset(offset)
    )
    total = await connection.scalar(
        sa.select(sa.func.count()).select_from(webhook_endpoints).where(where)
    )
    return rows.mappings().all(), int(total or 0)


async def update_endpoint(
    connection: AsyncConnection, endpoint_id: str, values: dict[str, Any]
) -> RowMapping:
    result = await connection.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(**values, updated_at=sa.func.now())
        .returning(*webhook_endpoints.c)
    )
    return result.mappings().one()


async def delete_endpoint(connection: AsyncConnection, endpoint_id: str) -> None:
    await connection.execute(
        sa.delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    )


async def enqueue(
    connection: AsyncConnection,
    *,
    account_id: str,
    event_type: str,
    job_id: str | None,
    payload: str,
    ids: Sequence[str],
    endpoint_ids: Sequence[str],
) -> None:
    """Write one delivery per endpoint, in the caller's transaction (the outbox)."""
    await connection.execute(
        sa.insert(webhook_deliveries),
        [
            {
                "id": delivery_id,
                "endpoint_id": endpoint_id,
                "event_type": event_type,
                "job_id": job_id,
                "payload": payload,
            }
            for delivery_id, endpoint_id in zip(ids, endpoint_ids, strict=True)
        ],
    )
    await connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, NOTIFY_PAYLOAD)))


_SUBSCRIBED = sa.select(webhook_endpoints.c.id).where(
    webhook_endpoints.c.account_id == sa.bindparam("account_id"),
    webhook_endpoints.c.active,
    webhook_endpoints.c.events.overlap(
        sa.bindparam("wanted", type_=webhook_endpoints.c.events.type)
    ),
)


def subscribed_ids(account_id: sa.ColumnElement[Any], event_type: str) -> sa.ScalarSelect[Any]:
    """The ids of the account's endpoints subscribed to `event_type` (NULL for none), as an
    expression: a statement writing a job event returns them too, saving a round trip."""
    return (
        sa.select(sa.func.array_agg(webhook_endpoints.c.id))
        .where(
            webhook_endpoints.c.account_id == account_id,
            webhook_endpoints.c.active,
            webhook_endpoints.c.events.overlap(
                sa.literal([event_type, "*"], type_=webhook_endpoints.c.events.type)
            ),
        )
        .scalar_subquery()
    )


async def subscribed_endpoints(
    connection: AsyncConnection, account_id: str, event_type: str
) -> list[str]:
    result = await connection.execute(
        _SUBSCRIBED, {"account_id": account_id, "wanted": [event_type, "*"]}
    )
    return [row[0] for row in result]


_DUE = sa.and_(
    webhook_deliveries.c.status == "pending",
    webhook_deliveries.c.next_attempt_at <= sa.func.now(),
)


async def claim_due(
    connection: AsyncConnection,
    *,
    limit: int,
    lease_seconds: float,
    per_endpoint: int,
    in_flight: Mapping[str, int],
) -> Sequence[RowMapping]:
    """Take due deliveries for one attempt each. The claim moves next_attempt_at past the
    lease, so no other dispatcher takes them meanwhile; a dispatcher that dies mid-send
    leaves them due again when the lease ends (at least once).

    Endpoints take turns: each endpoint's due deliveries are ranked oldest first and taken in
    order of rank, so a backlog at one endpoint does not hold back another's delivery; and
    an endpoint with `in_flight` sends already gets at most `per_endpoint` minus those. A
    delivery left for its endpoint's turn stays unclaimed, holding nothing."""
    busy = (
        sa.func.unnest(
            sa.literal(list(in_flight), postgresql.ARRAY(sa.Text)),
            sa.literal(list(in_flight.values()), postgresql.ARRAY(sa.Integer)),
        )
        .table_valued("endpoint_id", "sending", name="busy")
        .render_derived()
    )
    candidates = (
        sa.select(
            webhook_deliveries.c.id,
            webhook_deliveries.c.endpoint_id,
            webhook_deliveries.c.next_attempt_at,
            sa.func.row_number()
            .over(
                partition_by=webhook_deliveries.c.endpoint_id,
                order_by=webhook_deliveries.c.next_attempt_at,
            )
            .label("rank"),
        )
        .where(_DUE)
        .subquery("candidates")
    )
    turn = sa.func.coalesce(busy.c.sending, 0) + candidates.c.rank
    ranked = (
        sa.select(candidates.c.id, candidates.c.next_attempt_at, turn.label("turn"))
        .select_from(candidates.outerjoin(busy, busy.c.endpoint_id == candidates.c.endpoint_id))
        .where(turn <= per_endpoint)
        .subquery("ranked")
    )
    due = (
        sa.select(webhook_deliveries.c.id)
        .join(ranked, ranked.c.id == webhook_deliveries.c.id)
        .where(_DUE)
        .order_by(ranked.c.turn, ranked.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=webhook_deliveries)
        .scalar_subquery()
    )
    claimed = (
        sa.update(webhook_deliveries)
        .where(webhook_deliveries.c.id.in_(due))
        .values(
            next_attempt_at=sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds),
            attempts=webhook_deliveries.c.attempts + 1,
        )
        .returning(*webhook_deliveries.c)
        .cte("claimed")
    )
    result = await connection.execute(
        sa.select(
            claimed,
            webhook_endpoints.c.url,
            webhook_endpoints.c.secret,
            webhook_endpoints.c.previous_secret,
            webhook_endpoints.c.previous_secret_expires_at,
            webhook_endpoints.c.active,
        ).join(webhook_endpoints, webhook_endpoints.c.id == claimed.c.endpoint_id)
    )
    return result.mappings().all()


async def record_attempts(connection: AsyncConnection, attempts: Sequence[dict[str, Any]]) -> None:
    """Insert attempts: dicts of delivery_id, attempted_at, status_code, error, duration_ms
    and response_body."""
    await connection.execute(sa.insert(webhook_attempts), list(attempts))


_FINISH = (
    sa.update(webhook_deliveries)
    .where(webhook_deliveries.c.id == sa.bindparam("delivery_id"))
    .values(status=sa.bindparam("status"), last_attempt_at=sa.bindparam("attempted_at"))
)
_FINISH_AND_RETRY = _FINISH.values(
    next_attempt_at=sa.func.now()
    + sa.func.make_interval(0, 0, 0, 0, 0, 0, sa.bindparam("retry_in", type_=sa.Float))
)


async def finish_deliveries(
    connection: AsyncConnection, finished: Sequence[dict[str, Any]]
) -> None:
    """Set each delivery's status after an attempt: dicts of delivery_id, status,
    attempted_at and retry_in (seconds until the next attempt, or None)."""
    retried = [item for item in finished if item["retry_in"] is not None]
    settled = [
        {key: value for key, value in item.items() if key != "retry_in"}
        for item in finished
        if item["retry_in"] is None
    ]
    if retried:
        await connection.execute(_FINISH_AND_RETRY, retried)
    if settled:
        await connection.execute(_FINISH, settled)


async def endpoints_succeeded(connection: AsyncConnection, endpoint_ids: Sequence[str]) -> None:
    await connection.execute(
        sa.update(webhook_endpoints)
        .where(
            webhook_endpoints.c.id.in_(endpoint_ids),
            webhook_endpoints.c.failing_since.is_not(None),
        )
        .values(failing_since=None)
    )


async def endpoint_failed(
    connection: AsyncConnection, endpoint_id: str, *, disable_after: float, reason: str
) -> bool:
    """Note a failure; disable the endpoint once it has failed for `disable_after` seconds.
    Returns whether it was disabled now."""
    await connection.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.failing_since.is_(None))
        .values(failing_since=sa.func.now())
    )
    limit = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, disable_after)
    result = await connection.execute(
        sa.update(webhook_endpoints)
        .where(
            webhook_endpoints.c.id == endpoint_id,
            webhook_endpoints.c.active,
            webhook_endpoints.c.failing_since <= limit,
        )
        .values(active=False, disabled_reason=reason, updated_at=sa.func.now())
        .returning(webhook_endpoints.c.id)
    )
    return result.first() is not None


async def list_deliveries(
    connection: AsyncConnection,
    endpoint_id: str,
    *,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[RowMapping], dict[str, Sequence[RowMapping]], int]:
    where = [webhook_deliveries.c.endpoint_id == endpoint_id]
    if status is not None:
        where.append(webhook_deliveries.c.status == status)
    rows = (
        (
            await connection.execute(
                sa.select(webhook_deliveries)
                .where(*where)
                .order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc())
                .limit(limit)
                .offset(offset)
            )
        )
        .mappings()
        .all()
    )
    total = await connection.scalar(
        sa.select(sa.func.count()).select_from(webhook_deliveries).where(*where)
    )
    attempts = await attempts_of(connection, [row["id"] for row in rows])
    return rows, attempts, int(total or 0)


async def attempts_of(
    connection: AsyncConnection, delivery_ids: Sequence[str]
) -> dict[str, Sequence[RowMapping]]:
    by_delivery: dict[str, list[RowMapping]] = {delivery_id: [] for delivery_id in delivery_ids}
    if delivery_ids:
        result = await connection.execute(
            sa.select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id.in_(delivery_ids))
            .order_by(webhook_attempts.c.id)
        )
        for row in result.mappings():
            by_delivery[row["delivery_id"]].append(row)
    return dict(by_delivery)


async def get_delivery(
    connection: AsyncConnection, endpoint_id: str, delivery_id: str
) -> RowMapping | None:
    result = await connection.execute(
        sa.select(webhook_deliveries)
        .where(
            webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.endpoint_id == endpoint_id
        )
        .with_for_update()
    )
    return result.mappings().one_or_none()


async def retry_now(connection: AsyncConnection, delivery_id: str) -> RowMapping:
    result = await connection.execute(
        sa.update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(status="pending", next_attempt_at=sa.func.now())
        .returning(*webhook_deliveries.c)
    )
    await connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, NOTIFY_PAYLOAD)))
    return result.mappings().one()
