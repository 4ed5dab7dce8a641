"""A job's events (JSON or live), the account's status changes, and stream tokens."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, errors, validation
from app.accounts import service as accounts
from app.auth import service, stream_tokens
from app.auth.requests import (
    require_account_stream_access,
    require_job_stream_access,
    require_scope,
)
from app.auth.scopes import Scope
from app.auth.service import AuthContext
from app.envelope import utc_iso
from app.jobs import service as jobs_service
from app.routing import Operation, api
from app.streams import repository, schemas, sse


def last_event_id(request: Request) -> str | None:
    """Where a reconnecting client left off: the header browsers send, or a query parameter
    for clients that cannot set headers."""
    return request.headers.get("last-event-id") or request.query_params.get("lastEventId")


async def open_lease(
    connection: AsyncConnection, request: Request, auth: service.AuthContext
) -> str:
    """A place for one more open stream of the key (403 QUOTA_EXCEEDED when it has none
    left), held until the stream ends; streams count when opened, not per event."""
    limits = await accounts.limits_for(connection, auth.account_id, request.state.settings)
    lease: str = await request.state.leases.acquire(
        connection, auth.account_id, auth.key_id, limits
    )
    return lease


def seq_cursor(request: Request) -> int | None:
    raw = last_event_id(request)
    if raw is None:
        return None
    if not raw.isdigit():
        raise errors.ValidationError(
            "Invalid Last-Event-ID.",
            [{"field": "Last-Event-ID", "message": "expected the id of an event this stream sent"}],
        )
    return int(raw)


async def get_job_events(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    async with database.transaction(request.state.db) as connection:
        auth = await require_job_stream_access(connection, request, job_id)
        query = validation.validate_query(request, schemas.JobEventsQuery)
        job = await jobs_service.find_job(connection, auth.account_id, job_id)
        if query.follow:
            after = seq_cursor(request) or 0
            lease = await open_lease(connection, request, auth)
        else:
            rows = await repository.events_after(connection, job.id, 0, limit=10_000)
    if query.follow:
        stream = sse.job_events(request.state.feeds, job.id, after)
        return sse.response(request.state.leases.holding(lease, stream), request, auth.key_id)
    events = [
        {
            "seq": r["seq"],
            "type": r["type"],
            "timestamp": utc_iso(r["timestamp"]),
            "message": r["message"],
            "data": r["data"],
        }
        for r in rows
    ]
    return envelope.ok({"events": events})


async def get_account_events(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_account_stream_access(connection, request)
        query = validation.validate_query(request, schemas.AccountEventsQuery)
        if query.follow:
            after = _account_cursor(request) or await repository.settled_cursor(connection)
            lease = await open_lease(connection, request, auth)
        else:
            rows = await repository.recent_account_events(connection, auth.account_id, query.limit)
    if query.follow:
        stream = sse.account_events(
            request.state.db, request.state.listener, auth.account_id, after
        )
        return sse.response(request.state.leases.holding(lease, stream), request, auth.key_id)
    events = [{"id": sse.account_event_id(r), **sse.account_event_data(r)} for r in rows]
    return envelope.ok({"events": events})


def _account_cursor(request: Request) -> tuple[int, int] | None:
    raw = last_event_id(request)
    if raw is None:
        return None
    txid, _, event_id = raw.partition(".")
    if not (txid.isdigit() and event_id.isdigit()):
        raise errors.ValidationError(
            "Invalid Last-Event-ID.",
            [{"field": "Last-Event-ID", "message": "expected the id of an event this stream sent"}],
        )
    return int(txid), int(event_id)


async def create_stream_token(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        job = await jobs_service.find_job(
            connection, auth.account_id, request.path_params["job_id"]
        )
    return _issued_token(request, job.id, auth)


async def create_account_stream_token(request: Request) -> Response:
    """A token for the account's status stream, for browsers' EventSource."""
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
    return _issued_token(request, None, auth)


def _issued_token(request: Request, job_id: str | None, auth: AuthContext) -> Response:
    token, expires_at = stream_tokens.issue(
        request.state.stream_key,
        job_id=job_id,
        account_id=auth.account_id,
        key_id=auth.key_id,
        ttl_seconds=request.state.settings.stream_token_ttl,
    )
    return envelope.ok(schemas.StreamToken(token=token, expires_at=expires_at), status_code=201)


routes = [
    api(
        "/jobs/events",
        Operation(
            "GET",
            get_account_events,
            "getAccountEvents",
            "Status changes of every job of the account; with follow=true, live",
            scopes=(Scope.JOBS_READ,),
            response=schemas.AccountEvents,
            query=schemas.AccountEventsQuery,
            errors=(errors.ValidationError, errors.QuotaExceeded),
        ),
    ),
    # Before /jobs/{job_id}/stream-token, which would read "events" as a job id.
    api(
        "/jobs/events/stream-token",
        Operation(
            "POST",
            create_account_stream_token,
            "createAccountStreamToken",
            "Issue a short-lived token for the account's status stream (for EventSource)",
            scopes=(Scope.JOBS_READ,),
            response=schemas.StreamToken,
            status=201,
        ),
    ),
    api(
        "/jobs/{job_id}/events",
        Operation(
            "GET",
            get_job_events,
            "getJobEvents",
            "Read a job's events; with follow=true, a live Server-Sent Events stream",
            scopes=(Scope.JOBS_READ,),
            response=schemas.JobEvents,
            query=schemas.JobEventsQuery,
            errors=(errors.ValidationError, errors.JobNotFound, errors.QuotaExceeded),
        ),
    ),
    api(
        "/jobs/{job_id}/stream-token",
        Operation(
            "POST",
            create_stream_token,
            "createStreamToken",
            "Issue a short-lived token for this job's streams (for EventSource)",
            scopes=(Scope.JOBS_READ,),
            response=schemas.StreamToken,
            status=201,
            errors=(errors.JobNotFound,),
        ),
    ),
]
