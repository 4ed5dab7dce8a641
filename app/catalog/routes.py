"""HTTP handlers for /providers: authorize, ask the adapters, render."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, errors, validation
from app.auth.requests import require_scope
from app.auth.scopes import Scope
from app.catalog import schemas, service
from app.routing import Operation, api


async def list_providers(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        await require_scope(connection, request)
    return envelope.ok(await service.list_providers(request.state.providers))


async def get_provider(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        await require_scope(connection, request)
    provider = await service.get_provider(request.state.providers, request.path_params["name"])
    return envelope.ok(provider)


async def quote(request: Request) -> Response:
    body = await request.body()
    async with database.reading(request.state.db) as connection:
        await require_scope(connection, request)
    spec = validation.parse_json(request, body, schemas.QuoteRequest)
    return envelope.ok(await service.quote(request.state.providers, spec))


routes = [
    api(
        "/providers",
        Operation(
            "GET",
            list_providers,
            "listProviders",
            "Every provider: health, what it can run, how it prices",
            scopes=(Scope.JOBS_READ,),
            response=schemas.Provider,
            list_response=True,
        ),
    ),
    api(
        "/providers/quote",
        Operation(
            "POST",
            quote,
            "quoteProviders",
            'Compare what each provider would charge for a job spec (what "auto" would pick)',
            scopes=(Scope.JOBS_READ,),
            response=schemas.QuoteComparison,
            request=schemas.QuoteRequest,
            errors=(errors.ValidationError, errors.UnsupportedMediaType, errors.PayloadTooLarge),
        ),
    ),
    api(
        "/providers/{name}",
        Operation(
            "GET",
            get_provider,
            "getProvider",
            "One provider: health, what it can run, how it prices",
            scopes=(Scope.JOBS_READ,),
            response=schemas.Provider,
            errors=(errors.ProviderNotFound,),
        ),
    ),
]
