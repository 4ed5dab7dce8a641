"""The Idempotency-Key header: a retried submission answers the first response and creates
nothing more.

The key is claimed in the transaction that creates the job (or batch), and the response is
stored by that same transaction: a failed request leaves no trace (its retry runs afresh),
and a concurrent retry waits on the key's row, then replays what the first one committed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from app import errors
from app.idempotency import repository

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WINDOW = timedelta(hours=24)
MAX_KEY_LENGTH = 255
_KEY = re.compile(r"^[\x21-\x7e]+$")


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same: method, path and body, with JSON compared by value
    (key order and whitespace do not matter)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (UnicodeDecodeError, json.JSONDecodeError):
        canonical = body
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


def _key(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is not None and (len(key) > MAX_KEY_LENGTH or not _KEY.match(key)):
        raise errors.ValidationError(
            f"Invalid {HEADER} header.",
            [
                {
                    "field": HEADER,
                    "message": f"use 1 to {MAX_KEY_LENGTH} visible ASCII characters, e.g. a UUID",
                    "type": "idempotency_key",
                }
            ],
        )
    return key


async def respond_once(
    connection: AsyncConnection,
    request: Request,
    account_id: str,
    body: bytes,
    produce: Callable[[], Awaitable[Response]],
) -> Response:
    """`produce()`'s response, or, for a retry of a keyed request, the first response."""
    key = _key(request)
    if key is None:
        return await produce()
    method, path = request.method, request.url.path
    await repository.purge_expired(connection, account_id, WINDOW)
    request_fingerprint = fingerprint(method, path, body)
    while not await repository.claim(
        connection,
        account_id=account_id,
        key=key,
        fingerprint=request_fingerprint,
        method=method,
        path=path,
        window=WINDOW,
    ):
        first = await repository.get(connection, account_id, key)
        if first is None:
            continue  # expired and purged in between: claim it afresh
        return _first_response(first, key, request_fingerprint)
    response = await produce()
    await repository.store_response(
        connection, account_id, key, response.status_code, bytes(response.body).decode()
    )
    return response


async def replay(
    connection: AsyncConnection, request: Request, account_id: str, body: bytes
) -> Response | None:
    """The stored first response to a retry of a keyed request, read before the route asks
    the providers anything (a retry answers as the first request did, whatever the providers
    say now). None when there is nothing to replay yet: `respond_once` settles the rest."""
    key = _key(request)
    if key is None:
        return None
    first = await repository.get(connection, account_id, key)
    if (
        first is None
        or first["status_code"] is None  # claimed by a request still running
        or first["created_at"] < datetime.now(UTC) - WINDOW
    ):
        return None
    return _first_response(first, key, fingerprint(request.method, request.url.path, body))


def _first_response(first: RowMapping, key: str, request_fingerprint: str) -> Response:
    if first["fingerprint"] != request_fingerprint:
        raise errors.IdempotencyKeyReused(
            f"{HEADER} {key!r} was first used for {first['method']} {first['path']} with"
            " another body. A retry must repeat the original request exactly; a new"
            " request needs a new key.",
            [{"field": HEADER, "message": "already used for a different request"}],
        )
    return Response(
        first["response_body"],
        status_code=first["status_code"],
        media_type="application/json",
        headers={REPLAYED_HEADER: "true"},
    )
