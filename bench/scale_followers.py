"""Stream followers over 1, 2 and 4 gateway processes (bench/scale_out.py's fourth part).

`cortex-gateway serve --workers N` serves, with the engine and webhooks off; a few jobs
wait `pending` on the instant provider and a writer process (this file run as a script)
stores one line per job every 1/--line-rate seconds through the engine's own
`append_logs` (COPY + NOTIFY in one transaction), each line holding the wall clock taken
just before its transaction. That is the engine's part with its provider faked: what is
measured is the streams' own work, from a line stored to the line received. F followers of
`GET /jobs/{id}/logs?follow=true&tail=1` (raw connections, bench/sse_followers.py's) are
opened round-robin over the jobs; the kernel spreads their connections over the workers
(uvicorn's shared listening socket). For each F, over a window: the delay stored ->
received (p50/p95/p99), lines delivered per second and lines missing, the followers each
worker holds, each worker's CPU, Postgres' CPU and connections (and LISTENers), and the
cores used by other sessions.

Run as a script, this file is the writer:
    python bench/scale_followers.py DATABASE_URL job_1,job_2 --rate 10 --seconds 120
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.engine import repository as engine_repository
from providers.types import LogLine

from cpu_load import Load, between
from engine_latency import API, summary_ms
from sse_followers import Crowd, delays, raise_file_limit, written_lines

# --------------------------------------------------------------------------- the writer


async def write_lines(
    url: str, job_ids: Sequence[str], rate: float, seconds: float, written: list[int]
) -> None:
    """Every 1/rate seconds one line per job, each in its own transaction as the engine
    stores a poll's lines, until `seconds` have passed; counts them in written[0]."""
    db = database.create_engine(url, pool_size=2)
    seqs = dict.fromkeys(job_ids, 0)
    end = time.monotonic() + seconds
    due = time.monotonic()
    try:
        while time.monotonic() < end:
            for job_id in job_ids:
                async with database.transaction(db) as connection:
                    line = LogLine(datetime.now(UTC), f"{time.time():.6f}", "stdout")
                    seqs[job_id] = await engine_repository.append_logs(
                        connection, job_id, seqs[job_id], [line]
                    )
                written[0] += 1
            due += 1 / rate
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
    finally:
        await db.dispose()


class Writer:
    """The writer in a process of its own, so that the followers' client (this process)
    cannot delay a line between its time stamp and its commit."""

    def __init__(self, url: str, job_ids: Sequence[str], rate: float, seconds: float) -> None:
        self.command = [
            sys.executable,
            str(Path(__file__)),
            url,
            ",".join(job_ids),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
        ]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> int:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.process = await asyncio.create_subprocess_exec(
            *self.command, env=env, stdout=asyncio.subprocess.PIPE
        )
        return self.process.pid

    async def stop(self) -> int | None:
        """Lines written, or None when it had to be killed."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.terminate()
        try:
            out, _ = await asyncio.wait_for(self.process.communicate(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            return None
        # Nothing printed when it was stopped before its signal handler was installed.
        with contextlib.suppress(ValueError, IndexError):
            return int(out.decode().strip().splitlines()[-1])
        return None


# --------------------------------------------------------------------------- what is measured


def worker_pids(serve_pid: int) -> list[int]:
    """The processes that serve: the `serve` process itself with one worker, else its
    uvicorn workers (spawned children; not multiprocessing's resource tracker)."""
    workers = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
            command = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        serves = b"spawn_main" in command and b"resource_tracker" not in command
        if int(stat[1]) == serve_pid and serves:
            workers.append(int(entry.name))
    return sorted(workers) or [serve_pid]


def established(pids: Sequence[int], port: int) -> dict[int, int]:
    """Per process, its established TCP connections on `port` (the followers it holds)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
            inodes.add(fields[9])
    counts = {}
    for pid in pids:
        count = 0
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(fd.path)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        count += 1
        counts[pid] = count
    return counts


async def connections(db: AsyncEngine) -> dict[str, int]:
    """The database's client connections now, and how many of them are the streams'
    listeners: their last statement is their LISTEN or its health check (`SELECT 1`; the
    pools' pre-ping sends `;`)."""
    async with database.reading(db) as connection:
        row = (
            await connection.execute(
                sa.text(
                    "SELECT count(*),"
                    " count(*) FILTER (WHERE query ILIKE 'LISTEN%' OR query = 'SELECT 1')"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend'"
                )
            )
        ).one()
    return {"database_connections": int(row[0]), "listening": int(row[1])}


async def first_lines(db: AsyncEngine, job_ids: Sequence[str], within: float = 120.0) -> None:
    """Until the writer has stored a line for every job (it needs seconds to start on a
    loaded machine)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with database.reading(db) as connection:
            started = await connection.scalar(
                sa.text("SELECT count(DISTINCT job_id) FROM log_lines WHERE job_id = ANY(:ids)"),
                {"ids": list(job_ids)},
            )
        if started == len(job_ids):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the writer stored no line for some jobs in {within:.0f} s")


async def followers_part(
    served: Any,
    db: AsyncEngine,
    url: str,
    key: str,
    load: Load,
    job: dict[str, Any],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """`served` is scale_out's Served (`serve --workers N`, engine and webhooks off); the
    jobs followed are `job`s, left pending."""
    raise_file_limit()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=served.top + API, headers=headers) as client:
        job_ids = []
        for _ in range(args.stream_jobs):
            response = await client.post("/jobs", json=job)
            response.raise_for_status()
            job_ids.append(response.json()["data"]["id"])
    # Stopped at the end of the part; the bound only ends a writer left behind. Connecting
    # a step's followers can take minutes on a loaded machine.
    bound = (args.window + args.settle + args.grace + 300) * len(args.followers)
    writer = Writer(url, job_ids, args.line_rate, bound)
    writer_pid = await writer.start()
    await first_lines(db, job_ids)
    workers = worker_pids(served.process.pid)
    crowd = Crowd(served.port, key)
    levels = []
    try:
        for count in args.followers:
            connect_seconds = await crowd.grow(job_ids, count)
            await asyncio.sleep(args.settle)
            # Only lines written from the window on are measured: keep memory bounded.
            for follower in crowd.followers:
                follower.lines.clear()
            watched = (*workers, os.getpid(), writer_pid)
            window_start = time.time()
            first = load.sample(watched)
            postgres_0 = load.postgres_seconds()
            await asyncio.sleep(args.window)
            last = load.sample(watched)
            postgres_1 = load.postgres_seconds()
            window_end = time.time()
            held = established(workers, served.port)
            database_connections = await connections(db)
            await asyncio.sleep(args.grace)
            members = [
                f
                for f in crowd.followers
                if f.connected_at is not None and f.connected_at < window_start
            ]
            found = delays(members, window_start, window_end, 0.0)
            written = await written_lines(db, job_ids, window_start, window_end, 0.0)
            expected = sum(written.get(f.job_id, 0) for f in members)
            cores = between(first, last)
            watched_cores = cores.pop("watched_cores")
            level = {
                "followers": count,
                "open": crowd.open,
                "errors": len(crowd.errors()),
                "error_examples": list(dict.fromkeys(crowd.errors()))[:3],
                "connect_seconds": round(connect_seconds, 1),
                "delay_ms": {k: round(v, 1) for k, v in summary_ms(found).items()},
                "lines_expected": expected,
                "lines_delivered": len(found),
                "lines_missing": max(expected - len(found), 0),
                "delivered_per_s": round(len(found) / (window_end - window_start), 1),
                "followers_per_worker": list(held.values()),
                "worker_cores": [watched_cores.get(str(pid), 0.0) for pid in workers],
                "client_cores": watched_cores.get(str(os.getpid()), 0.0),
                "writer_cores": watched_cores.get(str(writer_pid), 0.0),
                "postgres_cores": round((postgres_1 - postgres_0) / cores["seconds"], 2),
                **database_connections,
                "load": cores,
            }
            levels.append(level)
            print_level(level)
            for follower in crowd.followers:
                follower.lines.clear()
    finally:
        await crowd.close()
        lines = await writer.stop()
        if levels:
            levels[-1]["writer_lines_total"] = lines
    return levels


def print_level(level: dict[str, Any]) -> None:
    delay = level["delay_ms"]
    print(
        f"   F={level['followers']}: open {level['open']} (errors {level['errors']}"
        f" {level['error_examples']}), stored -> received p50 "
        f"{delay.get('p50', '-')} p95 {delay.get('p95', '-')} p99 {delay.get('p99', '-')} ms,"
        f" {level['delivered_per_s']:.0f} lines/s, {level['lines_missing']} of "
        f"{level['lines_expected']} missing; per worker {level['followers_per_worker']} "
        f"followers, {level['worker_cores']} cores; client {level['client_cores']}, "
        f"postgres {level['postgres_cores']} cores, {level['database_connections']} "
        f"connections ({level['listening']} LISTEN); other cores {level['load']['other_cores']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="the line writer of the followers part")
    parser.add_argument("url")
    parser.add_argument("jobs")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    written = [0]

    async def run() -> None:
        task = asyncio.ensure_future(
            write_lines(args.url, args.jobs.split(","), args.rate, args.seconds, written)
        )
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    print(json.dumps(written[0]), flush=True)


if __name__ == "__main__":
    main()
