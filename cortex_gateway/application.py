"""The ASGI application: route table, error handlers, and the lifespan that owns resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount

from cortex_gateway import database, envelope, errors, exception_handlers, openapi
from cortex_gateway.body_limit import BodyLimitMiddleware
from cortex_gateway.jobs import routes as job_routes
from cortex_gateway.routing import resource
from cortex_gateway.settings import Settings


class State(TypedDict):
    db: AsyncEngine
    settings: Settings


async def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(openapi.document())


async def health(request: Request) -> JSONResponse:
    try:
        async with database.transaction(request.state.db) as connection:
            await connection.execute(sa.text("SELECT 1"))
    except Exception as exc:
        raise errors.InternalError("The database is not reachable.") from exc
    return envelope.ok({"status": "ok", "database": "ok"})


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> Starlette:
    """The gateway. `database_url` overrides the settings (the CLI resolves it once)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        url = database_url or database.resolve_url(settings)
        engine = database.create_engine(url, pool_size=settings.database_pool_size)
        try:
            yield dict(State(db=engine, settings=settings))
        finally:
            await engine.dispose()

    api = [
        *job_routes.routes,
        resource("/openapi.json", GET=openapi_document),
        resource("/health", GET=health),
    ]
    return Starlette(
        routes=[Mount(openapi.PREFIX, routes=api)],
        exception_handlers={
            errors.GatewayError: exception_handlers.gateway_error,
            HTTPException: exception_handlers.http_exception,
            Exception: exception_handlers.unexpected_error,
        },
        middleware=[Middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)],
        lifespan=lifespan,
    )
