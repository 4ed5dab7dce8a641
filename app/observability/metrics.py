"""Prometheus metrics of one gateway app.

Counters and histograms live in a registry of the app's own (tests build many apps in one
process), and count what happened in this process: a Prometheus server sums them over the
processes it scrapes. The workers of `serve --workers N` share one port, so a scrape reaches
one of them at random: there every worker writes its values to files in a directory the
parent made (prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR), and whichever
worker answers a scrape sums them all. Job totals by status are different: they are read at
scrape time from the running totals the database's triggers keep (`job_counts`), so every
process reports the same truth however many there are.

Code that records something finds the app's metrics through a context variable: the lifespan
binds it before it starts the background loops (whose tasks inherit it) and the request
middleware binds it for each request. Code running outside an app (a CLI command, a test
calling a service) finds none, and records nothing.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import __version__, processes
from app.jobs.lifecycle import JobStatus
from app.observability import tracing
from providers.base import Provider
from providers.errors import ProviderError
from providers.types import (
    FailureReason,
    Handle,
    Health,
    LogBatch,
    MetricSample,
    Quote,
    Refusal,
    WorkloadSpec,
    WorkloadStatus,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Set by `serve --workers N` for its workers (see the module's docstring).
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. A claim normally follows a submission within one poll interval; minutes mean the
# engines are saturated (CORTEX_ENGINE_MAX_JOBS) or none is running.
CLAIM_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# Seconds. Most API requests take milliseconds; a submission asks its provider first.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds. A local container API answers in milliseconds; a DePIN network's in seconds.
PROVIDER_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# What a webhook attempt led to: delivered, another attempt scheduled, or given up.
WEBHOOK_OUTCOMES = {"succeeded": "succeeded", "pending": "retrying", "failed": "failed"}

T = TypeVar("T")

_current: ContextVar[GatewayMetrics | None] = ContextVar("cortex_metrics", default=None)

# Counters' `_created` series (one per label set, the time it was first used) are noise to
# every dashboard; the setting is process-wide, and this process is the gateway.
disable_created_metrics()  # type: ignore[no-untyped-call]


def bind(metrics: GatewayMetrics) -> None:
    """Make `metrics` the ones this task (and the tasks it starts from now on) records to."""
    _current.set(metrics)


class GatewayMetrics:
    def __init__(self, providers: Sequence[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.providers = tuple(providers)
        self.submissions = Counter(
            "cortex_job_submissions",
            "Jobs accepted by the API, by provider.",
            ["provider"],
            registry=registry,
        )
        self.failures = Counter(
            "cortex_job_failures",
            "Jobs that ended failed, by provider and results.reason.",
            ["provider", "reason"],
            registry=registry,
        )
        self.claim_lag = Histogram(
            "cortex_engine_claim_lag_seconds",
            "Time from a job's creation until an engine claimed it to submit it.",
            buckets=CLAIM_LAG_BUCKETS,
            registry=registry,
        )
        self.provider_calls = Counter(
            "cortex_provider_calls",
            "Calls to provider adapters, by provider, operation and outcome "
            "(ok, or the provider error: unavailable, rejected, handle_not_found, ...).",
            ["provider", "operation", "outcome"],
            registry=registry,
        )
        self.provider_latency = Histogram(
            "cortex_provider_call_duration_seconds",
            "How long provider adapter calls took, by provider and operation.",
            ["provider", "operation"],
            buckets=PROVIDER_CALL_BUCKETS,
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "cortex_webhook_deliveries",
            "Webhook delivery attempts, by outcome (succeeded, retrying, failed).",
            ["outcome"],
            registry=registry,
        )
        self.http_requests = Counter(
            "cortex_http_requests",
            "HTTP requests answered, by method, route (its template) and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        # Each request's two series, found once per (method, route template, status): a
        # labels() lookup takes a lock and builds the key, on every request otherwise.
        self._answered: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.http_latency = Histogram(
            "cortex_http_request_duration_seconds",
            "Time to answer HTTP requests (event streams excluded), by method and route.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        # Gauges of what is open now: with several workers, the sum over the living ones.
        self.sse_streams = Gauge(
            "cortex_sse_streams_open",
            "Server-Sent Event streams open in this gateway's processes.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.engine_driving = Gauge(
            "cortex_engine_jobs_driving",
            "Jobs the engines of this gateway's processes are driving now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        Gauge(
            "cortex_build_info",
            "The gateway's version.",
            ["version"],
            registry=registry,
            multiprocess_mode="max",
        ).labels(__version__).set(1)
        # Series that exist from the start read 0 rather than missing, so rate() and alerts
        # work before the first event.
        for outcome in WEBHOOK_OUTCOMES.values():
            self.webhook_deliveries.labels(outcome)
        for provider in self.providers:
            self.submissions.labels(provider)
            for reason in FailureReason:
                self.failures.labels(provider, reason.value)

    def meter(self, adapter: Provider) -> Provider:
        """`adapter`, with every network call counted and timed."""
        return MeteredProvider(adapter, self)

    def request_answered(
        self, method: str, route: str, status: int, seconds: float, *, stream: bool
    ) -> None:
        # Normalized first: a client's made-up methods must not grow the cache.
        method = method if method in HTTP_METHODS else "OTHER"
        key = (method, route, status)
        series = self._answered.get(key)
        if series is None:
            series = (
                self.http_requests.labels(method, route, str(status)),
                self.http_latency.labels(method, route),
            )
            self._answered[key] = series
        counter, latency = series
        counter.inc()
        if not stream:
            latency.observe(seconds)

    def render(self, *collectors: Collector) -> bytes:
        """The text exposition of this app's metrics (of every worker's, when there are
        several) and of per-scrape `collectors`."""
        shared = os.environ.get(MULTIPROCESS_DIR)
        if not shared:
            return generate_latest(_Scrape(self.registry, collectors))
        _forget_dead_workers(Path(shared))
        workers = CollectorRegistry()
        multiprocess.MultiProcessCollector(workers, path=shared)  # type: ignore[no-untyped-call]
        return generate_latest(_Scrape(workers, collectors))


def _forget_dead_workers(shared: Path) -> None:
    """Drop the "now" gauges of workers that died (SIGKILL, and the supervisor replaced
    them): what a dead worker had open is not open any more. Its counters stay counted."""
    for path in shared.glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not processes.exists(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(shared))  # type: ignore[no-untyped-call]


def job_event(connection: AsyncConnection, row: RowMapping, event: str) -> None:
    """A job event is being recorded in `connection`'s transaction: count submissions and
    failures once (and only if) that transaction commits."""
    metrics = _current.get()
    if metrics is None or event not in ("created", "failed"):
        return
    provider = row["provider"]
    if event == "created":
        counter = metrics.submissions.labels(provider)
    else:
        reason = (row["results"] or {}).get("reason") or "unknown"
        counter = metrics.failures.labels(provider, reason)
    sa.event.listen(connection.sync_connection, "commit", lambda _: counter.inc(), once=True)


def job_claimed(row: RowMapping) -> None:
    """An engine took a job on; for a job still pending, how long it waited for that."""
    metrics = _current.get()
    if metrics is None or row["status"] != JobStatus.PENDING:
        return
    waited = (datetime.now(UTC) - row["created_at"]).total_seconds()
    metrics.claim_lag.observe(max(waited, 0.0))


def engine_driving(count: int) -> None:
    """The engine of this process drives `count` jobs now."""
    metrics = _current.get()
    if metrics is not None:
        metrics.engine_driving.set(count)


def webhook_attempted(status: str) -> None:
    """A delivery attempt ended and left the delivery `status` (pending: a retry is due)."""
    metrics = _current.get()
    if metrics is not None:
        metrics.webhook_deliveries.labels(WEBHOOK_OUTCOMES.get(status, status)).inc()


def jobs_collector(totals: Iterable[tuple[str, str, int]], providers: Sequence[str]) -> Collector:
    """`cortex_jobs{provider,status}` from (provider, status, count) rows; every status of
    every known provider is present, at 0 when it has no job."""
    counts: dict[tuple[str, str], int] = {
        (provider, status.value): 0 for provider in providers for status in JobStatus
    }
    for provider, status, count in totals:
        counts[(provider, status)] = counts.get((provider, status), 0) + count
    family = GaugeMetricFamily(
        "cortex_jobs",
        "Jobs by provider and status, from the database (the same in every process).",
        labels=["provider", "status"],
    )
    for (provider, status), count in sorted(counts.items()):
        family.add_metric([provider, status], count)
    return _Families([family])


def database_collector(reachable: bool) -> Collector:
    family = GaugeMetricFamily(
        "cortex_database_up",
        "1 when this process reached its database for this scrape, 0 when it could not.",
    )
    family.add_metric([], 1 if reachable else 0)
    return _Families([family])


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class _Scrape(Collector):
    """The app's registry plus what was read for this scrape alone."""

    def __init__(self, registry: CollectorRegistry, extra: Sequence[Collector]) -> None:
        self._registry = registry
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
        for collector in self._extra:
            yield from collector.collect()


def _outcome(exc: Exception) -> str:
    """`HandleNotFound` -> `handle_not_found`; anything not a provider error -> `error`."""
    if not isinstance(exc, ProviderError):
        return "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


class MeteredProvider(Provider):
    """An adapter whose network calls are counted and timed. It implements the contract
    itself, method by method, so it is a Provider to every caller and a contract change
    fails here rather than slipping past a catch-all proxy."""

    def __init__(self, adapter: Provider, metrics: GatewayMetrics) -> None:
        super().__init__()
        self.adapter = adapter
        self._metrics = metrics
        # Each adapter class declares these; the wrapper answers for the one it wraps.
        self.name = adapter.name  # type: ignore[misc]
        self.capabilities = adapter.capabilities  # type: ignore[misc]
        self.collects_outputs = adapter.collects_outputs  # type: ignore[misc]
        self.uploads_outputs = adapter.uploads_outputs  # type: ignore[misc]
        self.options = adapter.options

    async def aclose(self) -> None:
        await self.adapter.aclose()

    def check(self, spec: WorkloadSpec) -> list[Refusal]:
        return self.adapter.check(spec)

    async def health(self) -> Health:
        return await self._call("health", self.adapter.health())

    async def quote(self, spec: WorkloadSpec) -> Quote:
        return await self._call("quote", self.adapter.quote(spec))

    async def submit(self, spec: WorkloadSpec) -> Handle:
        return await self._call("submit", self.adapter.submit(spec))

    async def status(self, handle: Handle) -> WorkloadStatus:
        return await self._call("status", self.adapter.status(handle))

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        return await self._call("logs", self.adapter.logs(handle, cursor))

    async def metrics(self, handle: Handle) -> MetricSample | None:
        return await self._call("metrics", self.adapter.metrics(handle))

    async def cancel(self, handle: Handle) -> None:
        await self._call("cancel", self.adapter.cancel(handle))

    async def release(self, handle: Handle) -> None:
        await self._call("release", self.adapter.release(handle))

    async def output(self, handle: Handle, write: Callable[[bytes], Awaitable[None]]) -> bool:
        return await self._call("output", self.adapter.output(handle, write))

    async def upload_output(self, handle: Handle, url: str) -> bool:
        return await self._call("upload_output", self.adapter.upload_output(handle, url))

    async def watch(self, handle: Handle, max_wait: float) -> None:
        # Waiting is not a network call worth timing: it lasts as long as asked.
        await self.adapter.watch(handle, max_wait)

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            with tracing.span(f"provider.{operation}", **{"cortex.provider": self.adapter.name}):
                result = await call
        except Exception as exc:
            self._record(operation, _outcome(exc), started)
            raise
        self._record(operation, "ok", started)
        return result

    def _record(self, operation: str, outcome: str, started: float) -> None:
        provider = self.adapter.name
        self._metrics.provider_latency.labels(provider, operation).observe(
            time.perf_counter() - started
        )
        self._metrics.provider_calls.labels(provider, operation, outcome).inc()

    def __repr__(self) -> str:
        return f"metered({self.adapter!r})"
