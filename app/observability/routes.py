"""`/metrics`, `/healthz` and `/readyz`: off the API prefix, where operators' tools look."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, errors, exception_handlers, migrate
from app.observability import metrics, repository
from app.routing import resource
from providers import registry

# A readiness probe, and a scrape, must answer fast even when the database hangs.
READY_TIMEOUT_SECONDS = 3.0


async def get_metrics(request: Request) -> Response:
    """Answers while the database is away too: with `cortex_database_up 0` and no
    `cortex_jobs` (the database's numbers), so the outage itself can be graphed and alerted on."""
    _require_metrics_token(request)
    app_metrics: metrics.GatewayMetrics = request.state.metrics
    totals: list[tuple[str, str, int]] | None = None
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with database.transaction(request.state.db) as connection:
                totals = await repository.job_totals(connection)
    except TimeoutError:
        pass
    except exception_handlers.DATABASE_ERRORS as exc:
        if not exception_handlers.is_database_outage(exc):
            raise
    found = (
        [] if totals is None else [metrics.jobs_collector(totals, registry.available_providers())]
    )
    body = app_metrics.render(metrics.database_collector(totals is not None), *found)
    return Response(body, media_type=metrics.CONTENT_TYPE)


def _require_metrics_token(request: Request) -> None:
    token = request.state.settings.metrics_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise errors.Unauthorized("Send the metrics token: Authorization: Bearer <token>.")


async def healthz(request: Request) -> Response:
    """The process is up and serving HTTP (nothing else is checked: see /readyz)."""
    return envelope.ok({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the database answers, its schema is at this code's migration head, and
    the engine's loops run (when this process runs an engine)."""
    checks: dict[str, str] = {}
    failing: list[dict[str, str]] = []
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with database.reading(request.state.db) as connection:
                applied = await migrate.applied_revisions(connection)
    except Exception as exc:
        checks["database"] = "unreachable"
        failing.append({"field": "database", "message": f"unreachable: {_describe(exc)}"})
    else:
        checks["database"] = "ok"
        expected = migrate.head_revisions()
        if applied == expected:
            checks["migrations"] = "ok"
        else:
            behind = applied <= migrate.known_revisions()
            checks["migrations"] = "behind" if behind else "ahead"
            remedy = "run `cortex-gateway migrate`" if behind else "a newer gateway migrated it"
            message = (
                f"the database is at {_revisions(applied)}, this gateway needs "
                f"{_revisions(expected)}: {remedy}"
            )
            failing.append({"field": "migrations", "message": message})
    engine = request.state.engine
    if engine is None:
        checks["engine"] = "disabled"
    elif engine.alive:
        checks["engine"] = "ok"
    else:
        checks["engine"] = "stopped"
        failing.append({"field": "engine", "message": "the engine's loops are not running"})
    if failing:
        raise errors.NotReady(
            "Not ready: " + "; ".join(f"{f['field']} {f['message']}" for f in failing) + ".",
            failing,
        )
    return envelope.ok({"status": "ready", "checks": checks})


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


def _revisions(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) if revisions else "no revision"


routes = [
    resource("/metrics", GET=get_metrics),
    resource("/healthz", GET=healthz),
    resource("/readyz", GET=readyz),
]
