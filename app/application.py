"""The ASGI application: route table, error handlers, and the lifespan that owns resources."""

from __future__ import annotations

import functools
import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, TypedDict

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from app import database, envelope, errors, exception_handlers, openapi
from app.accounts import routes as account_routes
from app.accounts import service as accounts_service
from app.accounts.leases import StreamLeases
from app.admission.providers import ProviderSet
from app.auth import repository as auth_repository
from app.auth import stream_tokens
from app.auth.cache import KeyCache
from app.batches import routes as batch_routes
from app.body_limit import BodyLimitMiddleware
from app.catalog import routes as catalog_routes
from app.cors import CORSMiddleware
from app.dashboard import routes as dashboard_routes
from app.engine.loop import Engine
from app.job_templates import routes as template_routes
from app.jobs import routes as job_routes
from app.notify import ACCOUNTS_CHANGED
from app.observability import metrics as app_metrics
from app.observability import routes as operations_routes
from app.observability import tracing
from app.observability.middleware import RequestContextMiddleware
from app.outputs import links as output_links
from app.outputs import routes as output_routes
from app.outputs import store as artifact_store
from app.rate_limits.limiter import RateLimiter
from app.rate_limits.requests import RateLimitHeadersMiddleware
from app.retention import Pruner
from app.routing import Operation, api
from app.settings import Settings
from app.streams import routes as stream_routes
from app.streams.feeds import Feeds
from app.streams.listener import Listener
from app.telemetry import routes as telemetry_routes
from app.webhooks import routes as webhook_routes
from app.webhooks.dispatcher import Dispatcher
from providers import registry
from providers.base import Provider


class State(TypedDict):
    db: AsyncEngine
    settings: Settings
    providers: ProviderSet
    engine: Engine | None
    listener: Listener
    feeds: Feeds
    stream_key: bytes
    dispatcher: Dispatcher | None
    key_cache: KeyCache
    leases: StreamLeases
    metrics: app_metrics.GatewayMetrics
    rate_limiter: RateLimiter
    artifacts: artifact_store.ArtifactStore
    output_key: bytes


async def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(_api_document())


@functools.cache
def _api_document() -> dict[str, Any]:
    return openapi.document(API_ROUTES)


class HealthStatus(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


async def health(request: Request) -> Response:
    try:
        async with database.transaction(request.state.db) as connection:
            await connection.execute(sa.text("SELECT 1"))
    except Exception as exc:
        raise errors.ServiceUnavailable("The database is not reachable.") from exc
    return envelope.ok(HealthStatus(status="ok", database="ok"))


def _tune_garbage_collector(threshold: int) -> None:
    """Fewer, cheaper pauses for a process holding thousands of streams.

    Each followed stream keeps a few hundred objects alive (tasks, coroutines, buffers), and
    every line sent creates short-lived ones. At Python's default threshold (700) those are
    promoted before they die, and full collections over the whole heap stop the process for
    half a second at 2,000 followers (bench/ENGINE_STREAMS_WEBHOOKS.md). A larger young
    generation lets them die young; freezing what startup created keeps it out of every
    later collection (once per process: frozen objects are never collected)."""
    if threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)
    global _startup_frozen
    if not _startup_frozen:
        gc.collect()
        gc.freeze()
        _startup_frozen = True


_startup_frozen = False


# The API, mounted at openapi.PREFIX. Its declarations are also its OpenAPI document.
API_ROUTES: tuple[BaseRoute, ...] = (
    # Before /jobs/{job_id}: fixed paths under /jobs must not be read as job ids.
    *template_routes.routes,
    *batch_routes.routes,
    *stream_routes.routes,
    *job_routes.routes,
    *output_routes.routes,
    *telemetry_routes.routes,
    *webhook_routes.routes,
    *catalog_routes.routes,
    *account_routes.routes,
    api(
        "/openapi.json",
        Operation(
            "GET",
            openapi_document,
            "getOpenApi",
            "This OpenAPI 3.1 document",
            response=openapi.OpenApiDocument,
            uses_database=False,
            enveloped=False,
        ),
    ),
    api(
        "/health",
        Operation(
            "GET",
            health,
            "getHealth",
            "Whether the gateway and its database answer (public)",
            response=HealthStatus,
            errors=(errors.ServiceUnavailable,),
        ),
    ),
)


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    extra_providers: Sequence[Provider] = (),
) -> Starlette:
    """The gateway. `database_url` overrides the settings (the CLI resolves it once);
    `extra_providers` are adapter instances to use instead of building them from settings."""
    settings = settings or Settings()
    metrics = app_metrics.GatewayMetrics(registry.available_providers())
    tracing.setup(settings.otel_exporter_otlp_endpoint)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # The background loops started below record to this app's metrics.
        app_metrics.bind(metrics)
        url = database_url or database.resolve_url(settings)
        db = database.create_engine(url, pool_size=settings.database_pool_size)
        providers = ProviderSet(settings, metrics=metrics)
        for adapter in extra_providers:
            providers.add(adapter)
        artifacts = artifact_store.open_store(
            settings.artifacts_url,
            settings.data_dir,
            *(
                secret.get_secret_value() if secret else None
                for secret in (settings.aws_access_key_id, settings.aws_secret_access_key)
            ),
        )
        engine = (
            Engine(db, providers, settings, artifacts=artifacts) if settings.runs_engine else None
        )
        listener = Listener(settings.direct_database_url or url)
        feeds = Feeds(db, listener)
        key_cache = KeyCache(usable=listener.connected.is_set)
        listener.on(auth_repository.KEYS_CHANGED, key_cache.clear)
        listener.on(ACCOUNTS_CHANGED, accounts_service.forget_limits)
        leases = StreamLeases(db)
        dispatcher = Dispatcher(db, settings, listener) if settings.runs_webhooks else None
        rate_limiter = RateLimiter(db, settings.rate_limit_sync_interval)
        # Behind a transaction pooler the pruner's session lock needs a direct connection.
        direct = settings.direct_database_url
        pruner_db = (
            database.create_engine(database.normalize_url(direct), pool_size=1) if direct else db
        )
        pruner = Pruner(pruner_db, settings, artifacts)
        try:
            async with database.transaction(db) as connection:
                stream_key = await stream_tokens.load_key(connection)
                output_key = await output_links.load_key(connection)
            await listener.start()
            await leases.start()
            if engine is not None:
                await engine.start()
            if dispatcher is not None:
                await dispatcher.start()
            if settings.serves_api:
                await rate_limiter.start()
            if settings.runs_pruner:
                await pruner.start()
            _tune_garbage_collector(settings.gc_threshold)
            yield dict(
                State(
                    db=db,
                    settings=settings,
                    providers=providers,
                    engine=engine,
                    listener=listener,
                    feeds=feeds,
                    stream_key=stream_key,
                    dispatcher=dispatcher,
                    key_cache=key_cache,
                    leases=leases,
                    metrics=metrics,
                    rate_limiter=rate_limiter,
                    artifacts=artifacts,
                    output_key=output_key,
                )
            )
        finally:
            await rate_limiter.stop()
            await pruner.stop()
            if dispatcher is not None:
                await dispatcher.stop()
            if engine is not None:
                await engine.stop()
            feeds.stop()
            await leases.stop()
            await listener.stop()
            await providers.aclose()
            await artifacts.aclose()
            await db.dispose()
            if pruner_db is not db:
                await pruner_db.dispose()
            tracing.shutdown()

    # An engine-role process answers only the operations routes (probes and its metrics).
    served: list[BaseRoute] = (
        [Mount(openapi.PREFIX, routes=API_ROUTES), *dashboard_routes.routes]
        if settings.serves_api
        else []
    )
    return Starlette(
        routes=[*served[:1], *operations_routes.routes, *served[1:]],
        exception_handlers={
            errors.GatewayError: exception_handlers.gateway_error,
            HTTPException: exception_handlers.http_exception,
            **dict.fromkeys(exception_handlers.DATABASE_ERRORS, exception_handlers.database_error),
            Exception: exception_handlers.unexpected_error,
        },
        middleware=[
            *tracing.middleware(),
            Middleware(RequestContextMiddleware, metrics=metrics),
            # Preflights are answered before anything counts or checks a request.
            Middleware(CORSMiddleware, origins=settings.cors_origin_list, prefix=openapi.PREFIX),
            Middleware(
                BodyLimitMiddleware,
                max_body_bytes=settings.max_body_bytes,
                unbounded=output_routes.UNBOUNDED_BODIES,
            ),
            Middleware(RateLimitHeadersMiddleware),
        ],
        lifespan=lifespan,
    )
