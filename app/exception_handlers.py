"""Turns every exception into the error envelope; no traceback ever leaves the process."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import envelope, errors
from app.observability import logs
from app.observability.middleware import REQUEST_ID_HEADER

logger = logging.getLogger(__name__)

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


async def unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    # This answer is sent from outside the request-id middleware: it carries the id itself,
    # so that the client can quote it and the logged traceback be found.
    request_id = logs.request_id.get()
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return envelope.error(errors.InternalError(), headers=headers)
