"""Turns every exception into the error envelope; no traceback ever leaves the process."""

from __future__ import annotations

import logging
import os

import asyncpg
import sqlalchemy.exc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import envelope, errors
from app.observability import logs
from app.observability.middleware import REQUEST_ID_HEADER

logger = logging.getLogger(__name__)

# How long a client is asked to wait when the database is away: a restart takes seconds.
OUTAGE_RETRY_AFTER_SECONDS = 5

# What asyncpg raises when the server is gone, restarting or refusing connections for now.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    sqlalchemy.exc.TimeoutError,
)

_BY_STATUS: dict[int, type[errors.GatewayError]] = {
    400: errors.ValidationError,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    429: errors.RateLimitExceeded,
}


async def gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.GatewayError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.Unauthorized) else None
    if isinstance(exc, errors.RateLimitExceeded) and exc.retry_after is not None:
        headers = {"Retry-After": str(exc.retry_after)}
    return envelope.error(exc, headers=headers)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors: unknown routes, wrong methods, oversized bodies."""
    assert isinstance(exc, HTTPException)
    error_class = _BY_STATUS.get(exc.status_code, errors.InternalError)
    error = error_class()
    if isinstance(error, errors.MethodNotAllowed):
        error.message = f"{request.method} is not allowed on {request.url.path}."
    elif isinstance(error, errors.NotFound):
        error.message = f"No route matches {request.method} {request.url.path}."
    response = envelope.error(error, headers=dict(exc.headers or {}))
    return response


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the database cannot be reached, rather than
    that a statement was wrong: the first is the operator's to fix and worth a retry."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _CONNECTION_ERRORS):
            return True
        # Refused, reset, timed out, or no socket file: an OSError raised by the driver's own
        # socket code, not one of ours.
        if isinstance(current, OSError) and _raised_in_driver(current):
            return True
        # A database closed to connections (ALLOW_CONNECTIONS false, a restore under way).
        if isinstance(current, asyncpg.ObjectNotInPrerequisiteStateError) and (
            "not currently accepting connections" in str(current)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _raised_in_driver(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        if f"{os.sep}asyncpg{os.sep}" in traceback.tb_frame.f_code.co_filename:
            return True
        traceback = traceback.tb_next
    return False


# Handled inside the request-id middleware (no traceback from the server either); a
# statement's own error among them goes on to `unexpected_error`.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


async def database_error(request: Request, exc: Exception) -> Response:
    if not is_database_outage(exc):
        raise exc
    # One line, not a traceback per request: during an outage every request fails alike.
    logger.warning("database unreachable on %s %s: %r", request.method, request.url.path, exc)
    headers = {"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)}
    return envelope.error(errors.ServiceUnavailable(), headers=headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    # This answer is sent from outside the request-id middleware: it carries the id itself,
    # so that the client can quote it and the logged traceback be found.
    request_id = logs.request_id.get()
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    if is_database_outage(exc):
        # Raised where the handlers above do not reach (a middleware, the lifespan's state).
        response = await database_error(request, exc)
        response.headers.update(headers or {})
        return response
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return envelope.error(errors.InternalError(), headers=headers)
