"""A closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its next
request as soon as the previous response is in, for a fixed time.

It writes pre-built request bytes straight to asyncio transports and parses responses with
httptools (the parser uvicorn uses), instead of going through httpx: on a 2-core machine
the load generator competes with the server and PostgreSQL for CPU, and httpx costs
several times more per request than this, which would understate both servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

import timing

LABEL_HEADER = "x-bench-label"


def build_request(
    method: str,
    path: str,
    *,
    port: int,
    label: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"{LABEL_HEADER}: {label}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._body = []

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), b"".join(self._body)))

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@dataclass
class LoadResult:
    concurrency: int
    duration_s: float
    requests: int = 0
    errors: int = 0
    first_error: str | None = None
    latencies_s: list[float] = field(default_factory=list, repr=False)
    probes: tuple[Any, Any] | None = None

    @property
    def throughput(self) -> float:
        return self.requests / self.duration_s

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "errors": self.errors,
            "first_error": self.first_error,
            "throughput_rps": self.throughput,
            "latency_ms": timing.summarize_ms(self.latencies_s),
        }


async def run_load(
    port: int,
    *,
    measured: bytes,
    warmup: bytes,
    expect_status: int,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    probe: Callable[[], Any] | None = None,
) -> LoadResult:
    """Drive 127.0.0.1:port for warmup_s + duration_s; time only the measured window.

    Requests that start during the warmup carry the `warmup` bytes (another label, so the
    server files them apart too); requests that start inside the window are counted and
    timed, whenever they end. `probe` is called at the window's start and end (CPU
    counters), and both results land in `LoadResult.probes`.
    """
    loop = asyncio.get_running_loop()
    connections: list[_Connection] = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(_Connection, "127.0.0.1", port)
        connections.append(protocol)

    result = LoadResult(concurrency=concurrency, duration_s=duration_s)
    start = time.perf_counter()
    window_start = start + warmup_s
    window_end = window_start + duration_s

    async def worker(connection: _Connection) -> None:
        latencies = result.latencies_s
        while True:
            sent = time.perf_counter()
            if sent >= window_end:
                return
            in_window = sent >= window_start
            status, body = await connection.request(measured if in_window else warmup)
            if not in_window:
                continue
            latencies.append(time.perf_counter() - sent)
            result.requests += 1
            if status != expect_status:
                result.errors += 1
                if result.first_error is None:
                    result.first_error = f"HTTP {status}: {body[:300]!r}"

    async def probe_window() -> None:
        if probe is None:
            return
        await asyncio.sleep(max(window_start - time.perf_counter(), 0))
        first = probe()
        await asyncio.sleep(max(window_end - time.perf_counter(), 0))
        result.probes = (first, probe())

    try:
        # A server that stops answering must not hang the benchmark: the whole run is
        # bounded by its own length plus a grace period.
        await asyncio.wait_for(
            asyncio.gather(probe_window(), *(worker(c) for c in connections)),
            timeout=warmup_s + duration_s + 60,
        )
    finally:
        for connection in connections:
            connection.close()
    return result
