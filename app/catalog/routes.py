"""HTTP handlers for /providers: authorize, ask the adapters, render."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, validation
from app.auth.requests import require_scope
from app.auth.scopes import Scope
from app.catalog import schemas, service
from app.routing import resource


async def list_providers(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        await require_scope(connection, request, Scope.JOBS_READ)
    return envelope.ok(await service.list_providers(request.state.providers))


async def get_provider(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        await require_scope(connection, request, Scope.JOBS_READ)
    provider = await service.get_provider(request.state.providers, request.path_params["name"])
    return envelope.ok(provider)


async def quote(request: Request) -> Response:
    body = await request.body()
    async with database.reading(request.state.db) as connection:
        await require_scope(connection, request, Scope.JOBS_READ)
    spec = validation.parse_json(request, body, schemas.QuoteRequest)
    return envelope.ok(await service.quote(request.state.providers, spec))


routes = [
    resource("/providers", GET=list_providers),
    resource("/providers/quote", POST=quote),
    resource("/providers/{name}", GET=get_provider),
]
