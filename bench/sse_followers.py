"""Benchmark of live log followers on one gateway process (issue 4).

    /work/venv/bin/python bench/sse_followers.py                          # quick: 1, 50, 200
    /work/venv/bin/python bench/sse_followers.py --followers 1,50,200,500,1000,2000 --idle 2000
    /work/venv/bin/python bench/sse_followers.py --source db --followers 1,50,200,500,1000,2000 \
        --idle 0                                              # the streams without the engine

Runs a few jobs whose containers print the host's boot clock (/proc/uptime, 10 ms steps;
busybox's `date` has no sub-second format) every 100 ms, then opens F followers of
GET /jobs/{id}/logs?follow=true&tail=1 spread over them, in steps, and for each step
measures, over a fixed window: the delay from a line's write in the container to its
arrival at the client (p50/p99), lines delivered per second, connections still open, and
the gateway's CPU and RSS, Postgres' CPU and transactions per second.

With --source db the engine is off and this script writes the lines itself, through the
engine's own append_logs (insert + NOTIFY), so the delay measured is commit -> client: the
streams' share alone, without the engine's polling of the container runtime.

Before that, an idle phase opens the largest number of followers on a job that prints
nothing and holds them past a heartbeat: how many one process holds, and its memory per
connection.

The followers are raw asyncio connections in this process (uvloop when available); the
gateway runs under uvicorn in its own process. The shared harness (embedded PostgreSQL,
gateway child process, /proc sampling) is bench/engine_latency.py's. Results go to
bench/results/sse_followers-<time>.json; see bench/ENGINE_STREAMS_WEBHOOKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import resource
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.engine import repository as engine_repository
from providers.types import LogLine

from engine_latency import (
    API,
    ROOT,
    ContainerRuntime,
    Database,
    Gateway,
    Probe,
    add_runtime_argument,
    boot_clock,
    boot_to_wall,
    cleanup,
    code_fingerprint,
    create_admin_key,
    docker_client,
    fmt,
    handle_signals,
    job_spec,
    log_file,
    machine,
    pg_transactions,
    prepare_runtime,
    summary_ms,
    table,
    usage,
    write_results,
)

DELAY_TARGET_P99_MS = 250.0
FOLLOWERS_TARGET = 2000
# One line every 100 ms with the boot clock at the moment of writing. `read` is a shell
# builtin, so each line costs the container one `usleep` fork.
CHATTY = "while :; do read up idle < /proc/uptime; echo $up; usleep 100000; done"
QUIET = "echo ready; sleep 3600"


@dataclass
class Follower:
    """One SSE connection; the hot path only stores (arrival, raw line) pairs."""

    job_id: str
    connected_at: float | None = None
    closed: bool = False
    error: str | None = None
    pings: int = 0
    lines: list[tuple[float, bytes]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    writer: asyncio.StreamWriter | None = None


async def follow(port: int, key: str, follower: Follower, connected: asyncio.Event) -> None:
    """GET .../logs?follow=true over a raw connection, reading line by line.

    The response is chunked; every SSE event is one chunk, so chunk-size lines (hex digits)
    never look like `data:` or `:` lines and can be skipped."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        follower.writer = writer
        writer.write(
            f"GET {API}/jobs/{follower.job_id}/logs?follow=true&tail=1 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        status = await reader.readline()
        if b" 200 " not in status:
            follower.error = status.decode(errors="replace").strip() or "no answer"
            return
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        follower.connected_at = time.time()
        connected.set()
        append = follower.lines.append
        while line := await reader.readline():
            if line.startswith(b"data:"):
                append((time.time(), line))
            elif line.startswith(b": ping"):
                follower.pings += 1
            elif line.startswith(b"event: end"):
                break
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        follower.error = f"{type(exc).__name__}: {exc}"
    finally:
        follower.closed = True
        connected.set()
        if follower.writer is not None:
            follower.writer.close()


class Crowd:
    """All followers, opened a bounded number at a time."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key
        self.followers: list[Follower] = []

    async def grow(self, job_ids: Sequence[str], total: int, parallel: int = 50) -> float:
        """Open followers (round-robin over the jobs) until `total` exist; returns seconds
        until every new one had its response headers (or failed)."""
        started = time.monotonic()
        gate = asyncio.Semaphore(parallel)
        new = []
        for index in range(len(self.followers), total):
            follower = Follower(job_ids[index % len(job_ids)])
            self.followers.append(follower)
            new.append(follower)

        async def open_one(follower: Follower) -> None:
            async with gate:
                connected = asyncio.Event()
                follower.task = asyncio.create_task(
                    follow(self.port, self.key, follower, connected)
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(connected.wait(), 60)

        await asyncio.gather(*(open_one(f) for f in new))
        return time.monotonic() - started

    @property
    def open(self) -> int:
        return sum(1 for f in self.followers if f.connected_at is not None and not f.closed)

    def errors(self) -> list[str]:
        return [f.error for f in self.followers if f.error]

    async def close(self) -> None:
        for follower in self.followers:
            if follower.task is not None:
                follower.task.cancel()
        await asyncio.gather(
            *(f.task for f in self.followers if f.task is not None), return_exceptions=True
        )
        self.followers.clear()


def delays(followers: Sequence[Follower], start: float, end: float, offset: float) -> list[float]:
    """Write-to-arrival delays of the lines written in [start, end) (wall clock). A line's
    write time is its boot-clock value moved to the wall clock (`offset` includes +5 ms for
    the containers' lines: /proc/uptime truncates to 10 ms)."""
    found = []
    for follower in followers:
        for arrived, raw in follower.lines:
            try:
                written = float(json.loads(raw[5:])["line"]) + offset
            except (ValueError, KeyError):
                continue
            if start <= written < end:
                found.append(arrived - written)
    return found


_LINE_VALUE = re.compile(rb"(?m)(\d+\.\d+)$")


class RuntimeFollowers:
    """The runtime's own share of the delay: each job's container followed directly on the
    Docker API (GET /containers/{id}/logs?follow=1), as the engine's output doorbell is.
    The lines it delivers, with their arrival times, measured like the gateway's followers."""

    def __init__(self, docker_url: str, job_ids: Sequence[str]) -> None:
        self.lines: list[tuple[float, float]] = []  # (arrived, the line's boot clock)
        self._docker = docker_client(docker_url)
        self._tasks = [asyncio.create_task(self._follow(f"cortex-{j}")) for j in job_ids]

    async def _follow(self, container: str) -> None:
        params = {"follow": "1", "stdout": "1", "since": str(int(time.time()))}
        with contextlib.suppress(httpx.HTTPError):
            async with self._docker.stream(
                "GET",
                f"/containers/{container}/logs",
                params=params,
                timeout=httpx.Timeout(None),
            ) as response:
                async for chunk in response.aiter_raw():
                    arrived = time.time()
                    self.lines.extend(
                        (arrived, float(value)) for value in _LINE_VALUE.findall(chunk)
                    )

    def delays(self, start: float, end: float, offset: float) -> list[float]:
        found = []
        for arrived, value in self.lines:
            written = value + offset
            if start <= written < end:
                found.append(arrived - written)
        return found

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._docker.aclose()


async def written_lines(
    db: AsyncEngine, job_ids: Sequence[str], start: float, end: float, offset: float
) -> dict[str, int]:
    """Per job, the lines written in [start, end) that the engine has stored: what each of
    its followers should have received."""
    async with db.connect() as connection:
        result = await connection.execute(
            sa.text(
                "SELECT job_id, count(*) FROM log_lines WHERE job_id = ANY(:ids) "
                "AND line ~ '^[0-9.]+$' AND line::float8 + :offset >= :start "
                "AND line::float8 + :offset < :end GROUP BY job_id"
            ),
            {"ids": list(job_ids), "offset": offset, "start": start, "end": end},
        )
        return {row[0]: int(row[1]) for row in result}


async def start_jobs(
    client: httpx.AsyncClient, db: AsyncEngine, script: str, count: int, document: dict[str, Any]
) -> list[str]:
    """`count` running jobs. A job still pending after a while is cancelled and replaced:
    a submit that fails after its container was created is retried forever (see
    ENGINE_STREAMS_WEBHOOKS.md); those are counted in document["stuck_jobs_replaced"]."""
    wanted = [await submit(client, script) for _ in range(count)]
    for _ in range(4):
        deadline = time.monotonic() + 45
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            async with db.connect() as connection:
                result = await connection.execute(
                    sa.text("SELECT id, status FROM jobs WHERE id = ANY(:ids)"),
                    {"ids": wanted},
                )
                states = {row[0]: row[1] for row in result}
            if all(state == "running" for state in states.values()):
                return wanted
            if any(state in ("completed", "failed", "cancelled") for state in states.values()):
                raise RuntimeError(f"a job ended before it was followed: {states}")
            await asyncio.sleep(0.25)
        stuck = [job_id for job_id, state in states.items() if state != "running"]
        document["stuck_jobs_replaced"] = document.get("stuck_jobs_replaced", 0) + len(stuck)
        print(f"  {len(stuck)} job(s) still not running after 45 s; replacing them", flush=True)
        for job_id in stuck:
            await client.post(f"{API}/jobs/{job_id}/cancel")
            wanted[wanted.index(job_id)] = await submit(client, script)
    raise RuntimeError("could not get the jobs running")


async def write_lines(db: AsyncEngine, job_ids: Sequence[str], stop: asyncio.Event) -> int:
    """The engine's part without containers (--source db): every 100 ms, one line per job,
    stored and announced by the engine's own append_logs. The line holds the boot clock
    just before its transaction, so the delay measured is commit -> client."""
    seqs = dict.fromkeys(job_ids, 0)
    written = 0
    due = time.monotonic()
    while not stop.is_set():
        for job_id in job_ids:
            async with database.transaction(db) as connection:
                line = LogLine(datetime.now(UTC), f"{boot_clock():.4f}", "stdout")
                seqs[job_id] = await engine_repository.append_logs(
                    connection, job_id, seqs[job_id], [line]
                )
            written += 1
        due += 0.1
        await asyncio.sleep(max(due - time.monotonic(), 0.0))
    return written


async def stored_lines(db: AsyncEngine, job_ids: Sequence[str]) -> int:
    async with db.connect() as connection:
        count = await connection.scalar(
            sa.text("SELECT count(*) FROM log_lines WHERE job_id = ANY(:ids)"),
            {"ids": list(job_ids)},
        )
    return int(count or 0)


async def idle_phase(
    gateway: Gateway, key: str, probe: Probe, job_id: str, count: int, hold: float
) -> dict[str, Any]:
    """`count` followers of a job that prints nothing, held for `hold` seconds."""
    crowd = Crowd(gateway.port, key)
    await asyncio.sleep(2)
    before = probe.snapshot()
    connect_seconds = await crowd.grow([job_id], count)
    await asyncio.sleep(min(hold, 5.0))
    connected = probe.snapshot()
    await asyncio.sleep(max(hold - 5.0, 0.0))
    held = probe.snapshot()
    still_open = crowd.open
    pinged = sum(1 for f in crowd.followers if f.pings)
    errors = crowd.errors()
    await crowd.close()
    await asyncio.sleep(3)
    after_close = probe.snapshot()
    grown = connected.gateway_rss - before.gateway_rss
    return {
        "followers": count,
        "connect_seconds": connect_seconds,
        "hold_seconds": hold,
        "open_after_hold": still_open,
        "got_a_heartbeat": pinged,
        "errors": len(errors),
        "error_examples": list(dict.fromkeys(errors))[:5],
        "rss_mib": {
            "before": before.gateway_rss / 2**20,
            "connected": connected.gateway_rss / 2**20,
            "after_hold": held.gateway_rss / 2**20,
            "after_close": after_close.gateway_rss / 2**20,
        },
        "rss_kib_per_connection": grown / 1024 / count if count else None,
        "hold_usage": usage(connected, held),
    }


async def active_levels(
    gateway: Gateway,
    key: str,
    probe: Probe,
    db: AsyncEngine,
    job_ids: Sequence[str],
    args: argparse.Namespace,
    runtime: RuntimeFollowers | None,
) -> list[dict[str, Any]]:
    crowd = Crowd(gateway.port, key)
    levels = []
    baseline_rss = probe.snapshot().gateway_rss
    try:
        for count in args.followers:
            connect_seconds = await crowd.grow(job_ids, count)
            # Let new streams get past their first reads before measuring.
            await asyncio.sleep(args.settle)
            offset = boot_to_wall() + (0.005 if args.source == "container" else 0.0)
            window_start = time.time()
            first = probe.snapshot()
            first_tx, first_lines = await pg_transactions(db), await stored_lines(db, job_ids)
            samples = [first]
            while time.time() < window_start + args.window:
                await asyncio.sleep(1.0)
                samples.append(probe.snapshot())
            window_end = time.time()
            last_tx, last_lines = await pg_transactions(db), await stored_lines(db, job_ids)
            # Lines written in the window's first part get time to arrive before the end;
            # ones still missing then are counted as not delivered.
            await asyncio.sleep(args.grace)
            measured_end = window_end - 1.0
            members = [
                f
                for f in crowd.followers
                if f.connected_at is not None and f.connected_at < window_start
            ]
            found = delays(members, window_start, measured_end, offset)
            direct = runtime.delays(window_start, measured_end, offset) if runtime else []
            written = await written_lines(db, job_ids, window_start, measured_end, offset)
            expected = sum(written.get(f.job_id, 0) for f in members)
            span = measured_end - window_start
            level = {
                "followers": count,
                "open": crowd.open,
                "errors": len(crowd.errors()),
                "error_examples": list(dict.fromkeys(crowd.errors()))[:5],
                "connect_seconds": connect_seconds,
                "delay_ms": summary_ms(found),
                # The same lines followed directly on the container runtime's API.
                "runtime_delay_ms": summary_ms(direct) if runtime else None,
                # Lines written in the window, stored by the engine, that a follower had not
                # received `grace` seconds after the window: late beyond the delays above.
                "lines_expected": expected,
                "lines_delivered": len(found),
                "lines_missing": max(expected - len(found), 0),
                "delivered_per_s": len(found) / span,
                "engine_lines_stored_per_s": (last_lines - first_lines) / args.window,
                "pg_transactions_per_s": (last_tx - first_tx) / args.window,
                "usage": usage(first, samples[-1]),
                "rss_mib": samples[-1].gateway_rss / 2**20,
                "rss_growth_kib_per_follower": (samples[-1].gateway_rss - baseline_rss)
                / 1024
                / count,
            }
            levels.append(level)
            print_level(level)
            # Keep memory bounded: what was measured is no longer needed.
            for follower in crowd.followers:
                follower.lines.clear()
            if runtime:
                runtime.lines.clear()
    finally:
        await crowd.close()
    return levels


def print_level(level: dict[str, Any]) -> None:
    cores = level["usage"]["cores"]
    delay = level["delay_ms"]
    print(
        f"  F={level['followers']}: open {level['open']}, delay p50 {fmt(delay.get('p50'), 0)} "
        f"p99 {fmt(delay.get('p99'), 0)} ms, {level['delivered_per_s']:.0f} lines/s delivered, "
        f"{level['lines_missing']} of {level['lines_expected']} missing, gateway "
        f"{100 * cores['gateway']:.0f}% CPU, {level['rss_mib']:.0f} MiB, postgres "
        f"{100 * cores.get('postgres', 0):.0f}%, {level['pg_transactions_per_s']:.0f} tx/s"
        + (
            f"; the runtime alone: p50 {fmt(direct.get('p50'), 0)} "
            f"p99 {fmt(direct.get('p99'), 0)} ms"
            if (direct := level.get("runtime_delay_ms"))
            else ""
        ),
        flush=True,
    )


def print_report(document: dict[str, Any]) -> None:
    settings = document["settings"]
    idle = document.get("idle")
    print(
        f"\nengine_poll_interval={settings['engine_poll_interval']} s, "
        f"database_pool_size={settings['database_pool_size']} (+ as many overflow), "
        f"{document['jobs']} chatty jobs at 10 lines/s"
    )
    if idle:
        print(
            f"\nIdle followers: {idle['open_after_hold']}/{idle['followers']} open after "
            f"{idle['hold_seconds']:.0f} s ({idle['got_a_heartbeat']} got a heartbeat), "
            f"connected in {idle['connect_seconds']:.1f} s; gateway RSS "
            f"{idle['rss_mib']['before']:.0f} -> {idle['rss_mib']['connected']:.0f} MiB = "
            f"{fmt(idle['rss_kib_per_connection'])} KiB per connection "
            f"({idle['rss_mib']['after_close']:.0f} MiB after closing); errors {idle['errors']}"
        )
    rows = []
    for level in document["levels"]:
        delay = level["delay_ms"]
        cores = level["usage"]["cores"]
        rows.append(
            [
                str(level["followers"]),
                str(level["open"]),
                fmt(delay.get("p50"), 0),
                fmt(delay.get("p95"), 0),
                fmt(delay.get("p99"), 0),
                fmt(delay.get("max"), 0),
                f"{level['delivered_per_s']:.0f}",
                str(level["lines_missing"]),
                f"{100 * cores['gateway']:.0f}",
                f"{level['rss_mib']:.0f}",
                f"{100 * cores.get('postgres', 0):.0f}",
                f"{level['pg_transactions_per_s']:.0f}",
                f"{level['usage']['other_cores']:.2f}",
                "/".join(
                    fmt((level.get("runtime_delay_ms") or {}).get(q), 0) for q in ("p50", "p99")
                ),
            ]
        )
    headers = [
        "followers",
        "open",
        "delay p50 ms",
        "p95",
        "p99",
        "max",
        "lines/s",
        "missing",
        "gw CPU %",
        "gw RSS MiB",
        "pg CPU %",
        "pg tx/s",
        "other cores",
        "runtime alone p50/p99 ms",
    ]
    print("\nActive followers (lines written every 100 ms per job):")
    print(table(headers, rows))
    met = [
        lv
        for lv in document["levels"]
        if lv["open"] == lv["followers"]
        and not lv["lines_missing"]
        and lv["delay_ms"].get("p99", math.inf) < DELAY_TARGET_P99_MS
    ]
    best = max((lv["followers"] for lv in met), default=0)
    print(
        f"target: {FOLLOWERS_TARGET} followers with p99 < {DELAY_TARGET_P99_MS:.0f} ms: "
        f"largest level meeting it: {best or 'none'}"
    )


def raise_file_limit() -> int:
    """Each follower is a socket here and one in the gateway (a child, which inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def submit(client: httpx.AsyncClient, script: str) -> str:
    response = await client.post(f"{API}/jobs", json=job_spec(["sh", "-c", script], 3600))
    response.raise_for_status()
    job_id: str = response.json()["data"]["id"]
    return job_id


async def bench(args: argparse.Namespace, database_url: str, store: Database) -> dict[str, Any]:
    run_id = secrets.token_hex(4)
    db = database.create_engine(database_url, pool_size=4)
    key = await create_admin_key(db)
    settings = {
        # --source db: no engine; this script writes the lines (see write_lines).
        "engine_enabled": args.source == "container",
        "engine_poll_interval": args.poll_interval,
        "metrics_interval": 10.0,
        "database_pool_size": args.pool_size,
        "webhooks_enabled": False,
    }
    runtime = ContainerRuntime(store.directory, args.docker_host)
    document: dict[str, Any] = {
        "settings": settings,
        "source": args.source,
        "jobs": args.jobs,
        "run_id": run_id,
    }
    writer: asyncio.Task[int] | None = None
    direct: RuntimeFollowers | None = None
    stop_writing = asyncio.Event()
    gateway: Gateway | None = None
    try:
        docker_url = await runtime.start()
        document["docker"] = docker_url
        gateway = Gateway(database_url, settings, docker_url, log_file("sse_followers", "gateway"))
        await gateway.start()
        probe = Probe(gateway.pid, store.postmaster_pid, runtime.pid)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as client:
            containers = args.source == "container"
            if args.idle:
                if containers:
                    quiet = (await start_jobs(client, db, QUIET, 1, document))[0]
                else:
                    quiet = await submit(client, QUIET)  # stays pending: nothing written
                print(f"idle phase: {args.idle} followers of a quiet job", flush=True)
                document["idle"] = await idle_phase(
                    gateway, key, probe, quiet, args.idle, args.idle_hold
                )
                await client.post(f"{API}/jobs/{quiet}/cancel")
            if containers:
                job_ids = await start_jobs(client, db, CHATTY, args.jobs, document)
            else:
                job_ids = [await submit(client, CHATTY) for _ in range(args.jobs)]
                writer = asyncio.create_task(write_lines(db, job_ids, stop_writing))
            print(f"active phase: {args.jobs} jobs writing 10 lines/s", flush=True)
            if containers:
                direct = RuntimeFollowers(docker_url, job_ids)
            try:
                document["levels"] = await active_levels(
                    gateway, key, probe, db, job_ids, args, direct
                )
            finally:
                if direct is not None:
                    await direct.close()
            stop_writing.set()
            if writer is not None:
                document["lines_written_by_script"] = await writer
            for job_id in job_ids:
                await client.post(f"{API}/jobs/{job_id}/cancel")
    finally:
        stop_writing.set()
        if writer is not None and not writer.done():
            writer.cancel()
        if gateway is not None:
            await gateway.stop()
            document["gateway_log"] = gateway.log_problems()
            for line in document["gateway_log"]["examples"]:
                print(f"  gateway log: {line}")
        document["containers_removed_at_end"] = await cleanup(runtime.url, db, run_id)
        await db.dispose()
        await runtime.stop()
    return document


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--followers",
        type=lambda text: [int(part) for part in text.split(",") if part],
        default=[1, 50, 200],
        help="comma-separated follower counts, measured in turn (connections are kept)",
    )
    parser.add_argument("--idle", type=int, default=200, help="idle followers held first (0 skips)")
    parser.add_argument("--idle-hold", type=float, default=20.0, help="past one heartbeat")
    parser.add_argument("--jobs", type=int, default=4, help="chatty jobs the followers share")
    parser.add_argument(
        "--source",
        choices=["container", "db"],
        default="container",
        help="who writes the lines: containers through the engine (end to end), or this "
        "script straight into the database with the engine off (the streams alone)",
    )
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per level")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before each window")
    parser.add_argument("--grace", type=float, default=3.0, help="seconds for late lines")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="engine_poll_interval")
    parser.add_argument("--pool-size", type=int, default=10, help="database_pool_size")
    add_runtime_argument(parser)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args(sys.argv[1:])
    handle_signals()
    prepare_runtime(args)
    limit = raise_file_limit()
    needed = 2 * max([*args.followers, args.idle]) + 200
    if limit < needed:
        raise SystemExit(f"open-file limit {limit} is below the {needed} this run needs")
    started = datetime.now(UTC)
    # Taken before the gateway starts: the package may be edited while a run goes on.
    code = code_fingerprint()
    store = Database()
    try:
        url = store.start()
        runner: Any = asyncio.run
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
        document = runner(bench(args, url, store))
    finally:
        store.close()
    document = {
        "benchmark": "sse_followers",
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "code": code,
        "code_changed_during_run": code_fingerprint() != code,
        "machine": machine(),
        "open_file_limit": limit,
        **document,
    }
    # Written before printing, so that a report that fails to print loses nothing.
    path = write_results("sse_followers", document)
    print_report(document)
    print(f"\nresults: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
