"""Authorizes an HTTP request: a Bearer key with the scope the route needs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request

from app import errors, routing
from app.auth import service, stream_tokens
from app.auth.scopes import Scope, grants
from app.rate_limits import requests as rate_limits


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise errors.Unauthorized("Missing API key: send Authorization: Bearer <key>.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthorized("Malformed Authorization header: use Bearer <key>.")
    return token


async def require_job_stream_access(
    connection: AsyncConnection, request: Request, job_id: str
) -> service.AuthContext:
    """Reading one job's logs or events: a Bearer key with jobs:read, or a stream token
    issued for exactly this job (`?token=`, for browsers' EventSource)."""
    token = request.query_params.get("token")
    if token is None:
        return await require_scope(connection, request)
    grant = _stream_grant(request, token)
    if grant.job_id != job_id:
        raise errors.Unauthorized("This stream token was issued for another job.")
    return await _stream_auth(connection, grant)


async def require_account_stream_access(
    connection: AsyncConnection, request: Request
) -> service.AuthContext:
    """Reading the account's status changes: a Bearer key with jobs:read, or an account
    stream token (`?token=`, issued without a job)."""
    token = request.query_params.get("token")
    if token is None:
        return await require_scope(connection, request)
    grant = _stream_grant(request, token)
    if grant.job_id is not None:
        raise errors.Unauthorized("This stream token was issued for one job's streams.")
    return await _stream_auth(connection, grant)


def _stream_grant(request: Request, token: str) -> stream_tokens.StreamGrant:
    grant = stream_tokens.verify(request.state.stream_key, token)
    if grant is None:
        raise errors.Unauthorized("Invalid or expired stream token.")
    return grant


async def _stream_auth(
    connection: AsyncConnection, grant: stream_tokens.StreamGrant
) -> service.AuthContext:
    if not await service.key_is_active(connection, grant.key_id):
        raise errors.Unauthorized("The API key that issued this stream token was revoked.")
    return service.AuthContext(
        key_id=grant.key_id, account_id=grant.account_id, scopes=(Scope.JOBS_READ.value,)
    )


async def require_scope(connection: AsyncConnection, request: Request) -> service.AuthContext:
    """A Bearer key holding every scope that the operation serving the request declares."""
    cache = getattr(request.state, "key_cache", None)
    auth = await service.authenticate(connection, bearer_token(request), cache)
    if auth is None:
        raise errors.Unauthorized("Invalid or revoked API key.")
    # Before the scopes: a key refused for its scopes has still made a request.
    await rate_limits.limit(connection, request, auth.key_id, auth.account_id)
    for scope in routing.operation(request).scopes:
        if not grants(list(auth.scopes), scope):
            raise errors.Forbidden(f"This API key lacks the {scope.value!r} scope.")
    return auth
