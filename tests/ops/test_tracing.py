"""OpenTelemetry traces: off, nothing of OpenTelemetry is even imported; on, a gateway process
exports spans for a request, an engine step and a provider call to an OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.client.gateway import GatewayProcess
from tests.engine.conftest import busybox
from tests.factories import API, Keys

SPANS_SECONDS = 30


@dataclass
class Span:
    name: str
    kind: int
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    attributes: dict[str, str]
    service: str


@dataclass
class Collector:
    """What a tracing backend received: every span of every OTLP/HTTP export."""

    spans: list[Span] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def export(request: Request) -> Response:
            body = await request.body()
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            message = ExportTraceServiceRequest()
            message.ParseFromString(body)
            for resource_spans in message.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            Span(
                                name=span.name,
                                kind=span.kind,
                                trace_id=span.trace_id,
                                span_id=span.span_id,
                                parent_span_id=span.parent_span_id,
                                attributes={a.key: _text(a.value) for a in span.attributes},
                                service=resource.get("service.name", ""),
                            )
                        )
            answer = ExportTraceServiceResponse().SerializeToString()
            return Response(answer, media_type="application/x-protobuf")

        return Starlette(routes=[Route("/v1/traces", export, methods=["POST"])])

    async def wait_for(self, name: str, **attributes: str) -> Span:
        deadline = time.monotonic() + SPANS_SECONDS
        while time.monotonic() < deadline:
            for span in self.spans:
                if span.name == name and all(
                    span.attributes.get(k) == v for k, v in attributes.items()
                ):
                    return span
            await asyncio.sleep(0.1)
        raise AssertionError(f"no span {name} {attributes}: {[s.name for s in self.spans]}")


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    from tests.servers import uvicorn_server

    collector = Collector()
    async with uvicorn_server(collector.app()) as url:
        collector.url = url
        yield collector


async def test_a_request_an_engine_step_and_a_provider_call_are_traced(
    collector: Collector, database_url: str, keys: Keys, tmp_path: Path
) -> None:
    gateway = GatewayProcess(
        database_url,
        tmp_path / "gateway.log",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",  # export every 0.1 s rather than every 5 s
    )
    await asyncio.to_thread(gateway.start)
    try:
        key = await keys.create(scope=["jobs:read", "jobs:write"])
        async with httpx.AsyncClient(
            base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            created = await client.post(f"{API}/jobs", json=busybox("echo hi"))
            assert created.status_code == 201, created.text
            job_id = created.json()["data"]["id"]

            request = await collector.wait_for(f"POST {API}/jobs", **{"http.route": f"{API}/jobs"})
            step = await collector.wait_for("engine.start", **{"cortex.job_id": job_id})
            call = await collector.wait_for("provider.submit", **{"cortex.provider": "local"})
            assert (await client.get(f"{API}/jobs/{job_id}")).status_code == 200
            # Named by the route's template, not its path (one name per job would be useless).
            read = await collector.wait_for(f"GET {API}/jobs/{{job_id}}")
    finally:
        await asyncio.to_thread(gateway.stop)

    assert request.kind == read.kind == 2  # SPAN_KIND_SERVER
    assert read.attributes["http.target"] == f"{API}/jobs/{job_id}"
    assert {request.service, step.service} == {"cortex-gateway"}
    assert step.attributes["cortex.provider"] == "local"
    # The provider call happened inside the engine step, in its trace.
    assert (call.trace_id, call.parent_span_id) == (step.trace_id, step.span_id)
    # The adapter's own HTTP calls (the Docker Engine API) are children of the provider call.
    assert any(
        span.parent_span_id == call.span_id and span.kind == 3  # SPAN_KIND_CLIENT
        for span in collector.spans
    ), [(s.name, s.kind) for s in collector.spans]
    # The database statements of the request are in the request's trace.
    assert any(
        span.trace_id == request.trace_id and span.attributes.get("db.system") == "postgresql"
        for span in collector.spans
    )
    # The background loops' polling between steps is not traced: no client span is an orphan.
    assert not [s.name for s in collector.spans if s.kind == 3 and not s.parent_span_id]


def test_when_off_nothing_of_opentelemetry_is_imported(database_url: str) -> None:
    """No cost when off: serving requests (and starting the engine) loads none of it."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import httpx
        from app.application import create_app
        from app.settings import Settings

        from tests.servers import lifespan_app

        async def main():
            app = create_app(Settings(database_url={database_url!r}))
            async with lifespan_app(app) as app:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                    assert (await c.get("{API}/jobs")).status_code == 401
                    assert (await c.get("/metrics")).status_code == 200

        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    ran = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "[]"
