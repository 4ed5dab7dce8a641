"""Soak with faults (issue 20, item 6): three gateway processes on one database under a steady
mix of work while one of them is killed with SIGKILL every two minutes and started again.

    .venv/bin/python bench/soak.py                       # 10 minutes (the issue's minimum)
    .venv/bin/python bench/soak.py --minutes 2 --kill-every 40   # a quick look

The processes are `cortex-gateway serve --workers 1` on ports of their own, sharing an
embedded PostgreSQL this script starts (the one database). The load, spread over the live
processes (a request that meets a dead one goes to the next):

- submits: counting jobs (busybox printing `line 1` .. `line N`, N random, 20 ms apart) and,
  one in four, endless counters that are cancelled a few seconds later; every POST carries an
  Idempotency-Key and is retried on another process until it is answered;
- lists: GET /jobs pages, all the time;
- log followers: every counting job's log is followed over SSE; a dropped stream resumes
  on another process with Last-Event-ID;
- webhooks: one endpoint subscribed to every event, a receiver on 127.0.0.1.

Afterwards (every process up again, the load stopped, every job given time to end) it checks:

1. every job submitted exists once, has ended, and has exactly one terminal event;
2. every job's stored log is `line 1` .. `line k` with no gap and no duplicate (k = N for a
   counting job that completed), and every follower received exactly the stored lines;
3. every job event that goes to webhooks has exactly one delivery row, each succeeded, and
   the receiver got every delivery id at least once;
4. no container of the run is left in the runtime (the `cortex.job` label).

Figures and the verdict go to bench/results/soak-<time>.json and stdout; bench/README.md
keeps the last run's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import sqlalchemy as sa

from app import database

from engine_latency import (
    API,
    Database,
    create_admin_key,
    docker_client,
    free_port,
    log_file,
    write_results,
)
from webhook_throughput import Receiver

TERMINAL = ("completed", "failed", "cancelled")
WEBHOOK_EVENTS = ("created", "scheduled", "started", *TERMINAL)


class Process:
    """One `cortex-gateway serve --workers 1` on a port of its own, its output in a file."""

    def __init__(self, index: int, env: dict[str, str]) -> None:
        self.index = index
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_file("soak", f"gateway-{index}")
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--workers", "1", "--port", str(self.port)],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/readyz", timeout=2)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"gateway {self.index} not ready; see {self.log}")

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.up:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Load:
    """The clients, and what they saw."""

    def __init__(self, processes: list[Process], key: str, args: argparse.Namespace) -> None:
        self.processes = processes
        self.headers = {"Authorization": f"Bearer {key}"}
        self.args = args
        self.client = httpx.AsyncClient(headers=self.headers, timeout=30)
        self.jobs: dict[str, dict[str, Any]] = {}  # job id -> {"lines": N or None, ...}
        self.followed: dict[str, list[tuple[int, str]]] = {}
        self.counts: Counter[str] = Counter()
        self.stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """Through a live process; the next one when it cannot be reached (or answers 503)."""
        start = random.randrange(len(self.processes))
        for attempt in range(60):
            process = self.processes[(start + attempt) % len(self.processes)]
            if not process.up:
                continue
            try:
                response = await self.client.request(method, process.url + API + path, **options)
            except httpx.TransportError:
                self.counts["transport_errors"] += 1
                await asyncio.sleep(0.2)
                continue
            if response.status_code in (502, 503):
                self.counts[f"http_{response.status_code}"] += 1
                await asyncio.sleep(0.2)
                continue
            return response
        raise RuntimeError(f"{method} {path}: no process answered")

    async def submit(self, spec: dict[str, Any], lines: int | None) -> str:
        idempotency = {"Idempotency-Key": str(uuid.uuid4())}
        response = await self.request("POST", "/jobs", json=spec, headers=idempotency)
        if response.status_code != 201:
            raise RuntimeError(f"submit answered {response.status_code}: {response.text}")
        job_id: str = response.json()["data"]["id"]
        self.jobs[job_id] = {"lines": lines}
        self.counts["submitted"] += 1
        return job_id

    async def submitter(self) -> None:
        while not self.stopping.is_set():
            if random.random() < 0.25:
                job_id = await self.submit(spec(COUNT_FOREVER, duration=300), None)
                self.spawn(self.cancel_later(job_id))
            else:
                lines = random.randint(20, self.args.max_lines)
                job_id = await self.submit(spec(COUNT_TO.format(n=lines)), lines)
                self.spawn(self.follow(job_id))
            await asyncio.sleep(random.expovariate(self.args.rate))

    async def cancel_later(self, job_id: str) -> None:
        await asyncio.sleep(random.uniform(3, 10))
        response = await self.request("POST", f"/jobs/{job_id}/cancel")
        self.counts[f"cancel_{response.status_code}"] += 1

    async def lister(self) -> None:
        while not self.stopping.is_set():
            response = await self.request("GET", "/jobs", params={"limit": 50})
            self.counts[f"list_{response.status_code}"] += 1
            await asyncio.sleep(0.2)

    async def follow(self, job_id: str) -> None:
        """Every line of the job's log, once, whatever process dies meanwhile."""
        received = self.followed.setdefault(job_id, [])
        start = random.randrange(len(self.processes))
        for attempt in range(1000):
            process = self.processes[(start + attempt) % len(self.processes)]
            if not process.up:
                await asyncio.sleep(0.2)
                continue
            headers = {"Last-Event-ID": str(received[-1][0])} if received else {}
            try:
                async with self.client.stream(
                    "GET",
                    f"{process.url}{API}/jobs/{job_id}/logs",
                    params={"follow": "true"},
                    headers=headers,
                    timeout=httpx.Timeout(30, read=None),
                ) as response:
                    if response.status_code != 200:
                        self.counts[f"follow_{response.status_code}"] += 1
                        await asyncio.sleep(0.5)
                        continue
                    async for name, event_id, data in sse_events(response):
                        if name == "end":
                            return
                        received.append((int(event_id), json.loads(data)["line"]))
            except httpx.HTTPError:
                pass
            self.counts["follow_resumed"] += 1
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.client.aclose()


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str, str]]:
    """(event name, id, data) of each Server-Sent Event."""
    name, event_id, data = "message", "", []
    async for line in response.aiter_lines():
        line = line.rstrip("\r")
        if not line:
            if data:
                yield name, event_id, "\n".join(data)
            name, event_id, data = "message", "", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


COUNT_TO = 'i=1; while [ $i -le {n} ]; do echo "line $i"; i=$((i+1)); sleep 0.02; done'
COUNT_FOREVER = 'i=1; while true; do echo "line $i"; i=$((i+1)); sleep 0.1; done'


def spec(script: str, duration: int = 120) -> dict[str, Any]:
    return {
        "provider": "local",
        "image": "busybox:latest",
        "command": ["sh", "-c", script],
        "cpu": 100,
        "memory": "32Mi",
        "storage": "1Gi",
        "duration": duration,
    }


async def killer(processes: list[Process], load: Load, every: float, log: list[Any]) -> None:
    """SIGKILL the processes in turn, one every `every` seconds from the start."""
    index = 0
    began = time.monotonic()
    while True:
        await asyncio.sleep(max(0.0, began + (index + 1) * every - time.monotonic()))
        if load.stopping.is_set():
            return
        victim = processes[index % len(processes)]
        index += 1
        victim.kill()
        killed = time.monotonic()
        await asyncio.sleep(2)
        victim.start()
        await victim.ready()
        log.append({"process": victim.index, "back_after_s": round(time.monotonic() - killed, 1)})
        print(f"  killed gateway {victim.index} (SIGKILL) and started it again", flush=True)


async def wait_for_ends(db: Any, job_ids: list[str], seconds: float) -> int:
    """Until every job ended (or the time is up); returns how many have not."""
    deadline = time.monotonic() + seconds
    while True:
        async with database.reading(db) as connection:
            rows = await connection.execute(
                sa.text("SELECT count(*) FROM jobs WHERE id = ANY(:ids) AND status <> ALL(:end)"),
                {"ids": job_ids, "end": list(TERMINAL)},
            )
            open_jobs = int(rows.scalar_one())
        if open_jobs == 0 or time.monotonic() > deadline:
            return open_jobs
        await asyncio.sleep(1)


async def verify(db: Any, load: Load, receiver: Receiver, docker_host: str) -> dict[str, Any]:
    ids = list(load.jobs)
    problems: list[str] = []
    async with database.reading(db) as connection:
        jobs = {
            row.id: row
            for row in await connection.execute(
                sa.text(
                    "SELECT id, status FROM jobs WHERE account_id = "
                    "(SELECT account_id FROM jobs WHERE id = :one)"
                ),
                {"one": ids[0]},
            )
        }
        ends = Counter(
            row.job_id
            for row in await connection.execute(
                sa.text(
                    "SELECT job_id FROM job_events WHERE job_id = ANY(:ids) AND type = ANY(:t)"
                ),
                {"ids": ids, "t": list(TERMINAL)},
            )
        )
        logs: dict[str, list[tuple[int, str]]] = {job_id: [] for job_id in ids}
        for row in await connection.execute(
            sa.text(
                "SELECT job_id, seq, line FROM log_lines WHERE job_id = ANY(:ids) "
                "ORDER BY job_id, seq"
            ),
            {"ids": ids},
        ):
            logs[row.job_id].append((int(row.seq), row.line))
        events = Counter(
            (row.job_id, f"job.{row.type}")
            for row in await connection.execute(
                sa.text(
                    "SELECT job_id, type FROM job_events WHERE job_id = ANY(:ids) "
                    "AND type = ANY(:t)"
                ),
                {"ids": ids, "t": list(WEBHOOK_EVENTS)},
            )
        )
        deliveries = list(
            await connection.execute(
                sa.text(
                    "SELECT id, job_id, event_type, status, attempts FROM webhook_deliveries"
                    " WHERE job_id = ANY(:ids)"
                ),
                {"ids": ids},
            )
        )
    statuses = Counter(job.status for job in jobs.values())
    if set(jobs) != set(ids):
        problems.append(f"jobs: {len(jobs)} stored for {len(ids)} submitted")
    for job_id in ids:
        job = jobs.get(job_id)
        if job is not None and job.status not in TERMINAL:
            problems.append(f"{job_id} is still {job.status}")
        if ends[job_id] != 1:
            problems.append(f"{job_id} has {ends[job_id]} terminal events")
        stored = logs[job_id]
        texts = [line for _, line in stored]
        if texts != [f"line {i}" for i in range(1, len(texts) + 1)]:
            problems.append(f"{job_id}: stored log is not line 1..{len(texts)} once each")
        expected = load.jobs[job_id]["lines"]
        completed = job is not None and job.status == "completed"
        if expected is not None and completed and len(texts) != expected:
            problems.append(f"{job_id}: {len(texts)} lines stored, printed {expected}")
        if job_id in load.followed and load.followed[job_id] != stored:
            problems.append(
                f"{job_id}: follower got {len(load.followed[job_id])} lines, stored {len(stored)}"
            )
    per_event = Counter((row.job_id, row.event_type) for row in deliveries)
    for key, count in events.items():
        if per_event[key] != count:
            problems.append(f"{key}: {count} events, {per_event[key]} deliveries")
    arrived = {record["headers"].get("webhook-id") for record in await receiver.dump()}
    unsent = [row.id for row in deliveries if row.status != "succeeded"]
    lost = [row.id for row in deliveries if row.id not in arrived]
    if unsent:
        problems.append(f"{len(unsent)} deliveries not succeeded, e.g. {unsent[:3]}")
    if lost:
        problems.append(f"{len(lost)} deliveries never reached the receiver, e.g. {lost[:3]}")
    async with docker_client(docker_host) as docker:
        listed = (await docker.get("/containers/json", params={"all": "true"})).json()
    left = [c["Names"] for c in listed if c.get("Labels", {}).get("cortex.job") in jobs]
    if left:
        problems.append(f"containers left behind: {left[:5]}")
    return {
        "jobs": len(ids),
        "statuses": dict(statuses),
        "log_lines_stored": sum(len(lines) for lines in logs.values()),
        "followed_jobs": len(load.followed),
        "webhook_deliveries": len(deliveries),
        "webhook_attempts": sum(row.attempts for row in deliveries),
        "webhook_requests_received": len(arrived),
        "containers_left": len(left),
        "problems": problems,
    }


async def soak(args: argparse.Namespace, url: str) -> dict[str, Any]:
    db = database.create_engine(url, pool_size=2)
    receiver = Receiver()
    await receiver.start()
    key = await create_admin_key(db)
    docker_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CORTEX_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CORTEX_WEBHOOK_RETRY_SCHEDULE": "1,2,4,8,15",
        "CORTEX_ENGINE_LEASE_SECONDS": str(args.lease),
        "CORTEX_DEFAULT_RATE_LIMIT": "0",
    }
    processes = [Process(i, env) for i in range(args.processes)]
    for process in processes:
        process.start()
    await asyncio.gather(*(process.ready() for process in processes))
    load = Load(processes, key, args)
    created = await load.request(
        "POST", "/webhooks", json={"url": receiver.url + "/soak", "events": ["*"]}
    )
    assert created.status_code == 201, created.text
    kills: list[Any] = []
    began = time.monotonic()
    print(
        f"soak: {args.processes} processes, {args.minutes} min, SIGKILL every {args.kill_every} s"
    )
    workers = [asyncio.create_task(load.submitter()), asyncio.create_task(load.lister())]
    killing = asyncio.create_task(killer(processes, load, args.kill_every, kills))
    try:
        await asyncio.sleep(args.minutes * 60)
        load.stopping.set()
        killing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await killing
        await asyncio.gather(*workers)
        for process in processes:  # a kill under way when the load stopped: bring it back
            if not process.up:
                process.start()
        await asyncio.gather(*(process.ready() for process in processes))
        loaded = time.monotonic() - began
        print(f"load stopped after {loaded:.0f} s; waiting for every job to end", flush=True)
        still_open = await wait_for_ends(db, list(load.jobs), args.settle)
        # Followers see their `end`; deliveries and container removals finish.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await asyncio.gather(*list(load.tasks))
        await asyncio.sleep(args.lease + 10)
        result = await verify(db, load, receiver, docker_host)
        result.update(
            minutes=args.minutes,
            processes=args.processes,
            kills=kills,
            load_seconds=round(loaded, 1),
            jobs_open_after_settle=still_open,
            client_counts=dict(load.counts),
        )
        return result
    finally:
        load.stopping.set()
        for task in [*workers, killing, *load.tasks]:
            task.cancel()
        await load.close()
        for process in processes:
            process.stop()
        await receiver.stop()
        await db.dispose()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="load time (default 10)")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--rate", type=float, default=1.0, help="jobs submitted per second")
    parser.add_argument("--max-lines", type=int, default=300, help="longest counting job")
    parser.add_argument("--lease", type=float, default=15.0, help="CORTEX_ENGINE_LEASE_SECONDS")
    parser.add_argument("--settle", type=float, default=180.0, help="seconds jobs get to end")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args(sys.argv[1:])
    store = Database()
    try:
        result = asyncio.run(soak(args, store.start()))
    finally:
        store.close()
    path = write_results("soak", result)
    print(json.dumps({k: v for k, v in result.items() if k != "problems"}, indent=2))
    print(f"problems ({len(result['problems'])}):")
    for problem in result["problems"][:50]:
        print("  " + problem)
    print(f"results: {path}")
    sys.exit(1 if result["problems"] else 0)


if __name__ == "__main__":
    main()
