"""Server-side request timing for the benchmark, as a plain ASGI wrapper.

The gateway's own code stays untouched: `serve.py` wraps whichever app it serves in
`ServerTimings`. Each request is filed under the `x-bench-label` header the load generator
sends, so warmup traffic and each scenario land in separate buckets, and the benchmark
process reads the percentiles back from `GET /__bench/stats` before stopping the server.

Time is measured from the moment the server hands the request to the app until the last
body chunk is handed back, so it includes waiting for the event loop and for a pooled
database connection: what a client would see minus the network and the client's own work.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATS_PATH = "/__bench/stats"
RESET_PATH = "/__bench/reset"
LABEL_HEADER = b"x-bench-label"

# [seconds spent in database round trips, round trips] for the request being served. A list,
# not a tuple, so code running in copied contexts (SQLAlchemy's greenlets, callbacks asyncpg
# schedules with call_soon) adds to the same accumulator the middleware reads at the end.
_db_time: ContextVar[list[float] | None] = ContextVar("bench_db_time", default=None)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of an already sorted sequence."""
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(samples: Sequence[float]) -> dict[str, float | int]:
    """Count, mean and p50/p95/p99/max, in milliseconds, of durations given in seconds."""
    ordered = sorted(samples)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "mean": 1000 * sum(ordered) / len(ordered),
        "p50": 1000 * percentile(ordered, 50),
        "p95": 1000 * percentile(ordered, 95),
        "p99": 1000 * percentile(ordered, 99),
        "max": 1000 * ordered[-1],
    }


def record_db_time(seconds: float) -> None:
    """Charge one database round trip to the request being served (no-op outside one)."""
    accumulator = _db_time.get()
    if accumulator is not None:
        accumulator[0] += seconds
        accumulator[1] += 1


def _log_asyncpg_query(record: Any) -> None:
    record_db_time(record.elapsed)


async def attach_asyncpg_logger(connection: Any) -> None:
    """Count every query asyncpg sends as a simple or unprepared statement: BEGIN, COMMIT,
    pool pings, and all of the bare app's queries. (asyncpg does not log executions of
    explicitly prepared statements, which is how SQLAlchemy runs its statements; those are
    counted by the SQLAlchemy cursor events instead, so nothing is counted twice.)"""
    connection.add_query_logger(_log_asyncpg_query)


def install_sqlalchemy_timer() -> None:
    """Time every round trip SQLAlchemy makes, on every engine and pool of this process.

    The listeners sit on the Engine and Pool classes because the gateway creates its engine
    inside its lifespan, out of reach. Statements are timed around the cursor execution;
    BEGIN, COMMIT and the pool's pre-ping do not go through a cursor, so asyncpg's query
    logger is attached to each new connection to catch those.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    def before(conn: Any, cursor: Any, statement: Any, params: Any, ctx: Any, many: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: Any, params: Any, ctx: Any, many: Any) -> None:
        record_db_time(time.perf_counter() - conn.info["bench_started"].pop())

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(_log_asyncpg_query)

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    event.listen(Pool, "connect", on_connect)


class ServerTimings:
    """ASGI wrapper: per-label request durations, database time, and a stats route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.db_seconds: dict[str, list[float]] = defaultdict(list)
        self.db_round_trips: dict[str, list[int]] = defaultdict(list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # The lifespan passes straight through: the app keeps its own startup/shutdown.
            await self.app(scope, receive, send)
            return
        if scope["path"] == STATS_PATH:
            await self._reply(send, self.stats())
            return
        if scope["path"] == RESET_PATH:
            self.durations.clear()
            self.db_seconds.clear()
            self.db_round_trips.clear()
            await self._reply(send, {"reset": True})
            return

        label = "unlabeled"
        for name, value in scope["headers"]:
            if name == LABEL_HEADER:
                label = value.decode("latin-1")
                break
        started = time.perf_counter()
        accumulator = [0.0, 0.0]
        token = _db_time.set(accumulator)

        def file_db_time() -> None:
            self.db_seconds[label].append(accumulator[0])
            self.db_round_trips[label].append(int(accumulator[1]))

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.durations[label].append(time.perf_counter() - started)
                # asyncpg reports a finished query through loop.call_soon; the last one (the
                # COMMIT) may still be queued, and call_soon runs callbacks in order.
                asyncio.get_running_loop().call_soon(file_db_time)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            _db_time.reset(token)

    def stats(self) -> dict[str, Any]:
        cpu = os.times()
        labels: dict[str, Any] = {}
        for label, samples in self.durations.items():
            round_trips = self.db_round_trips[label]
            labels[label] = {
                "total": summarize_ms(samples),
                "db": summarize_ms(self.db_seconds[label]),
                "db_round_trips_per_request": sum(round_trips) / max(len(round_trips), 1),
            }
        return {"pid": os.getpid(), "cpu_seconds": cpu.user + cpu.system, "labels": labels}

    @staticmethod
    async def _reply(send: Send, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
