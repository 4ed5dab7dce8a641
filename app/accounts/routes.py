"""GET /account: the calling key's account, its limits, what it uses and its budget."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope
from app.accounts import leases, schemas, service
from app.auth.requests import require_scope
from app.routing import Operation, api


async def get_account(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        account = await service.describe(
            connection,
            auth.account_id,
            leases.lease_key(auth.key_id, auth.account_id),
            request.state.settings,
            leases.STALE_SECONDS,
        )
    return envelope.ok(account)


routes = [
    api(
        "/account",
        Operation(
            "GET",
            get_account,
            "getAccount",
            "The key's account: its limits, quotas with current use, and budget",
            any_key=True,
            response=schemas.Account,
        ),
    ),
]
