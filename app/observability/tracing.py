"""Optional OpenTelemetry traces: requests, engine steps and provider calls, exported over
OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (the `[otel]` extra).

Off (the default), nothing of OpenTelemetry is imported and each hook below is one check of a
module variable. On, `setup()` makes the process's tracer provider, with a batching exporter to
`<endpoint>/v1/traces`, and instruments what the gateway calls: its HTTP requests (the ASGI
middleware, named by route template), the database (asyncpg, one span per statement),
outgoing HTTP (httpx: provider APIs, webhooks), and, here, each engine step and provider call.
The SDK's own OTEL_* variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS,
OTEL_BSP_SCHEDULE_DELAY, ...) apply as usual.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from starlette.middleware import Middleware

if TYPE_CHECKING:
    from app.jobs.record import JobRecord

Action = TypeVar("Action", bound=Callable[..., Awaitable[Any]])
logger = logging.getLogger(__name__)

SERVICE_NAME = "cortex-gateway"
# The process's tracer once set up; None: tracing is off.
_tracer: Any = None
_provider: Any = None


def enabled() -> bool:
    return _tracer is not None


def setup(endpoint: str | None) -> bool:
    """Start exporting traces to `endpoint` (an OTLP/HTTP base URL); False when it is unset.
    Once per process: the instrumentations it installs are the process's."""
    global _tracer, _provider
    if not endpoint:
        return False
    if _tracer is not None:
        return True
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'cortex-gateway[otel]'"
        ) from exc
    from app import __version__

    provider = TracerProvider(
        resource=Resource.create({"service.name": SERVICE_NAME, "service.version": __version__}),
        sampler=_sampler(),
    )
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    _provider = provider
    _tracer = provider.get_tracer("app")
    logger.info("exporting traces to %s", endpoint)
    return True


def _sampler() -> Any:
    """Every trace, but not the statements and calls the background loops make between their
    steps (the engine's claim poll, the dispatcher's): a client span with no parent is dropped.
    What an engine step or a request does is kept, under its span."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )

    class NoOrphanClientSpans(Sampler):
        def __init__(self) -> None:
            self._within = ParentBased(ALWAYS_ON)

        def should_sample(self, parent_context: Any, *args: Any, **kwargs: Any) -> Any:
            kind = kwargs.get("kind", args[2] if len(args) > 2 else None)
            parent = trace.get_current_span(parent_context).get_span_context()
            if kind == trace.SpanKind.CLIENT and not parent.is_valid:
                return SamplingResult(Decision.DROP)
            return self._within.should_sample(parent_context, *args, **kwargs)

        def get_description(self) -> str:
            return "NoOrphanClientSpans"

    return NoOrphanClientSpans()


def shutdown() -> None:
    """Export what is left (at the process's end)."""
    if _provider is not None:
        _provider.force_flush()


def middleware() -> list[Middleware]:
    """The middleware giving each request a server span: none when tracing is off."""
    if _tracer is None:
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    # One span per request; not one more per chunk received or sent (a stream sends thousands).
    return [
        Middleware(
            OpenTelemetryMiddleware,
            tracer_provider=_provider,
            exclude_spans=["receive", "send"],
        )
    ]


def name_request(method: str, route: str) -> None:
    """Name the request's span after its route template (its path would make one name per job)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)


@contextmanager
def span(name: str, **attributes: str) -> Iterator[None]:
    """A span around the block (nothing when tracing is off)."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield


def engine_step(name: str) -> Callable[[Action], Action]:
    """Decorates an engine action `f(ctx, job, ...)`: a span `engine.<name>` per call."""

    def decorate(action: Action) -> Action:
        @functools.wraps(action)
        async def traced(ctx: Any, job: JobRecord, *args: Any, **kwargs: Any) -> Any:
            if _tracer is None:
                return await action(ctx, job, *args, **kwargs)
            attributes = {"cortex.job_id": job.id, "cortex.provider": job.provider}
            with _tracer.start_as_current_span(f"engine.{name}", attributes=attributes):
                return await action(ctx, job, *args, **kwargs)

        return cast(Action, traced)

    return decorate
