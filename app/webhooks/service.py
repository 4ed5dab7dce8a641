"""Webhook use cases: subscriptions, the outbox, replays. Never commits."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import errors, ids
from app.envelope import utc_iso
from app.webhooks import repository, schemas, signing, url_guard

# Job events that go out to webhooks, by the name they carry there.
JOB_EVENT_TYPES = {
    "created": "job.created",
    "scheduled": "job.scheduled",
    "started": "job.started",
    "completed": "job.completed",
    "failed": "job.failed",
    "cancelled": "job.cancelled",
    # Throttled per job (app.jobs.progress): progress, statusMessage or a declared outputUrl.
    "progress": "job.progress",
}
TEST_EVENT = "webhook.test"


def to_endpoint(row: RowMapping) -> schemas.Endpoint:
    return schemas.Endpoint.model_validate(dict(row))


def to_endpoint_with_secret(row: RowMapping) -> schemas.EndpointWithSecret:
    return schemas.EndpointWithSecret.model_validate(dict(row))


async def _safe_url(url: str, allowed: Sequence[url_guard.Network]) -> None:
    try:
        await url_guard.resolve(url, allowed)
    except url_guard.UnsafeURL as exc:
        raise errors.ValidationError(
            "This URL cannot receive webhooks.",
            [{"field": "url", "message": str(exc), "type": "unsafe_url"}],
        ) from exc


async def create_endpoint(
    connection: AsyncConnection,
    account_id: str,
    body: schemas.EndpointCreate,
    allowed: Sequence[url_guard.Network],
) -> schemas.EndpointWithSecret:
    await _safe_url(body.url, allowed)
    row = await repository.insert_endpoint(
        connection,
        {
            "id": ids.new_id("whk"),
            "account_id": account_id,
            "url": body.url,
            "description": body.description,
            "events": list(body.events),
            "secret": body.secret or signing.new_secret(),
        },
    )
    return to_endpoint_with_secret(row)


async def find_endpoint(
    connection: AsyncConnection, account_id: str, endpoint_id: str, *, for_update: bool = False
) -> RowMapping:
    row = None
    if ids.looks_like("whk", endpoint_id):
        row = await repository.get_endpoint(
            connection, account_id, endpoint_id, for_update=for_update
        )
    if row is None:
        raise errors.WebhookNotFound(f"Webhook endpoint {endpoint_id} not found.")
    return row


async def list_endpoints(
    connection: AsyncConnection, account_id: str, query: schemas.ListQuery
) -> tuple[list[schemas.Endpoint], dict[str, Any]]:
    rows, total = await repository.list_endpoints(
        connection, account_id, limit=query.limit, offset=(query.page - 1) * query.limit
    )
    return [to_endpoint(row) for row in rows], _pagination(total, query)


def _pagination(total: int, query: schemas.ListQuery) -> dict[str, Any]:
    pages = (total + query.limit - 1) // query.limit
    return {
        "pagination": {"total": total, "page": query.page, "limit": query.limit, "pages": pages}
    }


async def update_endpoint(
    connection: AsyncConnection,
    account_id: str,
    endpoint_id: str,
    body: schemas.EndpointUpdate,
    allowed: Sequence[url_guard.Network],
) -> schemas.Endpoint:
    row = await find_endpoint(connection, account_id, endpoint_id, for_update=True)
    values: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "url" in values:
        if values["url"] is None:
            raise errors.ValidationError(
                "Invalid request body.", [{"field": "url", "message": "cannot be null"}]
            )
        await _safe_url(values["url"], allowed)
    if values.get("events", ...) is None or values.get("active", ...) is None:
        raise errors.ValidationError(
            "Invalid request body.", [{"field": "events/active", "message": "cannot be null"}]
        )
    if values.get("active") is True:
        # Turned back on by its owner: failures start counting afresh.
        values.update(disabled_reason=None, failing_since=None)
    if values:
        row = await repository.update_endpoint(connection, row["id"], values)
    return to_endpoint(row)


async def delete_endpoint(connection: AsyncConnection, account_id: str, endpoint_id: str) -> None:
    row = await find_endpoint(connection, account_id, endpoint_id, for_update=True)
    await repository.delete_endpoint(connection, row["id"])


async def rotate_secret(
    connection: AsyncConnection,
    account_id: str,
    endpoint_id: str,
    body: schemas.SecretRotation,
    grace_seconds: float,
) -> schemas.EndpointWithSecret:
    """A new secret signs from now on; the old one signs too for `grace_seconds`, so that
    receivers can switch without dropping a delivery."""
    row = await find_endpoint(connection, account_id, endpoint_id, for_update=True)
    row = await repository.update_endpoint(
        connection,
        row["id"],
        {
            "secret": body.secret or signing.new_secret(),
            "previous_secret": row["secret"] if grace_seconds > 0 else None,
            "previous_secret_expires_at": datetime.now(UTC) + timedelta(seconds=grace_seconds)
            if grace_seconds > 0
            else None,
        },
    )
    return to_endpoint_with_secret(row)


def _body(event_type: str, data: Any, occurred_at: datetime) -> str:
    """`timestamp` is when the event happened, as the job's events show it (not when the
    delivery is sent: the webhook-timestamp header says that)."""
    return json.dumps(
        {"type": event_type, "timestamp": utc_iso(occurred_at), "data": data},
        separators=(",", ":"),
    )


async def send_test(
    connection: AsyncConnection, account_id: str, endpoint_id: str
) -> schemas.Delivery:
    row = await find_endpoint(connection, account_id, endpoint_id)
    delivery_id = ids.new_id("msg")
    now = datetime.now(UTC)
    await repository.enqueue(
        connection,
        account_id=account_id,
        event_type=TEST_EVENT,
        job_id=None,
        payload=_body(TEST_EVENT, {"endpointId": row["id"], "sentAt": utc_iso(now)}, now),
        ids=[delivery_id],
        endpoint_ids=[row["id"]],
    )
    return schemas.Delivery(
        id=delivery_id,
        event_type=TEST_EVENT,
        job_id=None,
        status="pending",
        attempts=[],
        next_attempt_at=datetime.now(UTC),
        created_at=datetime.now(UTC),
    )


async def publish_job_event(
    connection: AsyncConnection,
    *,
    account_id: str,
    job_id: str,
    event: str,
    job_document: Callable[[], Awaitable[Any]],
    occurred_at: datetime | None = None,
    subscribed: Sequence[str] | None = None,
) -> None:
    """Queue deliveries of a job event to every endpoint subscribed to it, in the caller's
    transaction: they commit with the change that caused them, or not at all. `occurred_at`
    is the event's recorded time (now when not given); `subscribed`, the subscribed endpoints
    when the caller's statement already read them in this transaction (looked up if None)."""
    event_type = JOB_EVENT_TYPES.get(event)
    if event_type is None:
        return
    endpoint_ids = (
        list(subscribed)
        if subscribed is not None
        else await repository.subscribed_endpoints(connection, account_id, event_type)
    )
    if not endpoint_ids:
        return
    await repository.enqueue(
        connection,
        account_id=account_id,
        event_type=event_type,
        job_id=job_id,
        payload=_body(event_type, await job_document(), occurred_at or datetime.now(UTC)),
        ids=[ids.new_id("msg") for _ in endpoint_ids],
        endpoint_ids=endpoint_ids,
    )


def to_delivery(row: RowMapping, attempts: Sequence[RowMapping]) -> schemas.Delivery:
    return schemas.Delivery(
        id=row["id"],
        event_type=row["event_type"],
        job_id=row["job_id"],
        status=row["status"],
        attempts=[schemas.Attempt.model_validate(dict(attempt)) for attempt in attempts],
        next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
        created_at=row["created_at"],
    )


async def list_deliveries(
    connection: AsyncConnection, account_id: str, endpoint_id: str, query: schemas.DeliveryQuery
) -> tuple[list[schemas.Delivery], dict[str, Any]]:
    endpoint = await find_endpoint(connection, account_id, endpoint_id)
    rows, attempts, total = await repository.list_deliveries(
        connection,
        endpoint["id"],
        status=query.status,
        limit=query.limit,
        offset=(query.page - 1) * query.limit,
    )
    deliveries = [to_delivery(row, attempts[row["id"]]) for row in rows]
    return deliveries, _pagination(total, query)


async def retry_delivery(
    connection: AsyncConnection, account_id: str, endpoint_id: str, delivery_id: str
) -> schemas.Delivery:
    endpoint = await find_endpoint(connection, account_id, endpoint_id)
    row = await repository.get_delivery(connection, endpoint["id"], delivery_id)
    if row is None:
        raise errors.DeliveryNotFound(f"Delivery {delivery_id} not found.")
    row = await repository.retry_now(connection, row["id"])
    attempts = await repository.attempts_of(connection, [row["id"]])
    return to_delivery(row, attempts[row["id"]])
