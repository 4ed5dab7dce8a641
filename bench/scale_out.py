"""Scale-out (issue 20, item 5): 1, 2 and 4 gateway processes sharing one database.

    .venv/bin/python bench/scale_out.py                          # 1, 2, 4 processes
    .venv/bin/python bench/scale_out.py --parts followers        # stream followers only
    .venv/bin/python bench/scale_out.py --processes 1,2 --duration 5 --queued 2000
    .venv/bin/python bench/scale_out.py --cursor-jobs 1000000,3000000   # cursor pages only

For each process count N, on a fresh database of one embedded PostgreSQL, the gateway runs
as `cortex-gateway serve --workers N` (the shape users run: N workers on one port):

1. API: POST /jobs, then GET /jobs (default page), each for --duration seconds at 32
   keep-alive connections with bench/loadgen.py (engine and webhooks off, so only the API
   works);
2. engine: --queued jobs (10,000) wait on the `instant` provider (bench/plugin, an
   entry-point plugin whose workloads end the moment they start); the gateway starts
   with its engines on and, once it is ready, counts for --engine-seconds (45) the jobs
   claimed (left `pending`) and ended per second (each is claimed, submitted, looked at,
   completed and released: several transactions);
3. webhooks: --deliveries deliveries are written to the outbox in one transaction (as the
   gateway's own enqueue does), the gateway starts with only the dispatcher on, and the
   clock runs until a receiver on 127.0.0.1 has them all: deliveries per second;
4. followers: --followers clients follow the logs of --stream-jobs jobs over SSE while a
   writer stores their lines (bench/scale_followers.py): delay stored -> received, lines/s,
   followers and CPU per worker, database connections.

`--parts` picks some of them. Each part records the other sessions' load on the machine
(bench/cpu_load.py).

`--cursor-jobs` instead seeds one account with each count of jobs (bench/seed.py, INSERT ...
SELECT over generate_series) and times GET /jobs pages (the first, then with cursors at the
start, the middle and the end of the history), one request at a time, with EXPLAIN
(ANALYZE, BUFFERS) of the page query at each place.

Results: bench/results/scale_out-<time>.json and stdout; figures in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database, embedded_postgres, ids, migrate
from app.pagination import Cursor
from app.webhooks import repository as webhooks_repository

import loadgen
import seed
from cpu_load import Load, between, postmaster_pid
from engine_latency import (
    API,
    ROOT,
    _admin,
    code_fingerprint,
    create_admin_key,
    free_port,
    log_file,
    machine,
    percentile,
    write_results,
)
from scale_followers import followers_part
from webhook_throughput import Receiver

# `instant` (bench/plugin) builds on the Acme test plugin.
PLUGINS = (ROOT / "bench" / "plugin", ROOT / "tests" / "providers" / "plugin")
INSTANT_JOB = {
    "provider": "instant",
    "image": "acme/instant:1",
    "cpu": 100,
    "memory": "64Mi",
    "storage": "1Gi",
    "duration": 60,
}
CONNECTIONS = 32


class Served:
    """`cortex-gateway serve --workers N` on a port of its own."""

    def __init__(self, url: str, workers: int, label: str, **settings: str) -> None:
        self.port = free_port()
        self.top = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "PYTHONPATH": os.pathsep.join([*map(str, PLUGINS), os.environ.get("PYTHONPATH", "")]),
            "CORTEX_INSTANT_START_SECONDS": "0",
            "CORTEX_DEFAULT_RATE_LIMIT": "0",
            "CORTEX_DEFAULT_MAX_ACTIVE_JOBS": "0",
            "CORTEX_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "CORTEX_LOG_LEVEL": "warning",
            **settings,
        }
        command = [sys.executable, "-m", "app", "serve", "--workers", str(workers)]
        with log_file("scale_out", label).open("ab") as output:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    async def ready(self) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                if self.process.poll() is not None:
                    raise RuntimeError("serve exited; see bench/results/scale_out-*.log")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.top}/readyz", timeout=2)).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError("serve was not ready in 120 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def fresh_database(server: str) -> str:
    name = f"cortex_scale_{secrets.token_hex(4)}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(migrate.upgrade, url)
    return url


async def account_of(db: AsyncEngine) -> str:
    async with database.reading(db) as connection:
        return str(await connection.scalar(sa.text("SELECT id FROM accounts LIMIT 1")))


async def api_part(url: str, workers: int, key: str, duration: float) -> dict[str, Any]:
    served = Served(
        url,
        workers,
        f"api-{workers}",
        CORTEX_ENGINE_ENABLED="false",
        CORTEX_WEBHOOKS_ENABLED="false",
    )
    try:
        await served.ready()
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        body = json.dumps(INSTANT_JOB).encode()
        results = {}
        for name, method, path, payload, status in (
            ("post_jobs", "POST", f"{API}/jobs", body, 201),
            ("get_jobs", "GET", f"{API}/jobs", b"", 200),
        ):

            def request(
                label: str, method: str = method, path: str = path, payload: bytes = payload
            ) -> bytes:
                return loadgen.build_request(
                    method,
                    path,
                    port=served.port,
                    label=label,
                    headers=auth,
                    body=payload,
                )

            result = await loadgen.run_load(
                served.port,
                measured=request(name),
                warmup=request("warmup"),
                expect_status=status,
                concurrency=CONNECTIONS,
                warmup_s=2,
                duration_s=duration,
            )
            latency = result.summary()["latency_ms"]
            results[name] = {
                "req_per_s": round(result.throughput, 1),
                "p50_ms": round(latency.get("p50", 0), 1),
                "p99_ms": round(latency.get("p99", 0), 1),
                "errors": result.errors,
            }
        return results
    finally:
        served.stop()


async def queue_jobs(db: AsyncEngine, wanted: int) -> int:
    """Copies of a pending instant job (made through the API) until `wanted` are pending."""
    async with database.transaction(db) as connection:
        await connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
        pending = int(
            await connection.scalar(sa.text("SELECT count(*) FROM jobs WHERE status = 'pending'"))
        )
        columns = [
            row[0]
            for row in await connection.execute(
                sa.text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'"
                    " AND column_name NOT IN ('id', 'created_at', 'updated_at')"
                    " AND column_default IS NULL"
                )
            )
        ]
        listed = ", ".join(columns)
        if wanted > pending:
            await connection.execute(
                sa.text(
                    f"INSERT INTO jobs (id, created_at, {listed})"
                    f" SELECT 'job_' || substr(md5(random()::text || g), 1, 16),"
                    f" clock_timestamp(), {listed}"
                    " FROM (SELECT * FROM jobs WHERE status = 'pending' LIMIT 1) AS template,"
                    " generate_series(1, :n) AS g"
                ),
                {"n": wanted - pending},
            )
        return int(
            await connection.scalar(sa.text("SELECT count(*) FROM jobs WHERE status = 'pending'"))
        )


async def engine_counts(db: AsyncEngine) -> tuple[int, int]:
    """(jobs claimed at least once, jobs ended)."""
    async with database.reading(db) as connection:
        row = (
            await connection.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE status <> 'pending'),"
                    " count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled'))"
                    " FROM jobs"
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def engine_part(
    url: str, db: AsyncEngine, workers: int, queued: int, window: float
) -> dict[str, Any]:
    """Jobs claimed and ended per second over `window` seconds with `queued` waiting."""
    waiting = await queue_jobs(db, queued)
    served = Served(url, workers, f"engine-{workers}", CORTEX_WEBHOOKS_ENABLED="false")
    try:
        await served.ready()
        claimed_0, ended_0 = await engine_counts(db)
        began = time.monotonic()
        await asyncio.sleep(window)
        claimed_1, ended_1 = await engine_counts(db)
        spent = time.monotonic() - began
        async with database.reading(db) as connection:
            failed = int(
                await connection.scalar(sa.text("SELECT count(*) FROM jobs WHERE status='failed'"))
            )
            owners = int(
                await connection.scalar(
                    sa.text("SELECT count(DISTINCT engine_owner) FROM jobs WHERE ended_at IS NULL")
                )
            )
    finally:
        served.stop()
    return {
        "queued": waiting,
        "window_s": round(spent, 1),
        "claimed_per_s": round((claimed_1 - claimed_0) / spent, 1),
        "ended_per_s": round((ended_1 - ended_0) / spent, 1),
        "ended_in_window": ended_1 - ended_0,
        "engines_holding_jobs_at_end": owners,
        "failed": failed,
    }


async def webhook_part(
    url: str, db: AsyncEngine, workers: int, key: str, count: int
) -> dict[str, Any]:
    receiver = Receiver()
    await receiver.start()
    served = Served(url, workers, f"webhooks-{workers}", CORTEX_ENGINE_ENABLED="false")
    try:
        await served.ready()
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as client:
            created = await client.post(
                f"{served.top}{API}/webhooks",
                json={"url": receiver.url + "/hook", "events": ["job.created"]},
            )
            created.raise_for_status()
        served.stop()  # the outbox fills while no dispatcher runs
        endpoint = created.json()["data"]["id"]
        account = await account_of(db)
        payload = json.dumps({"type": "job.created", "data": {"id": "job_0"}})
        async with database.transaction(db) as connection:
            await webhooks_repository.enqueue(
                connection,
                account_id=account,
                event_type="job.created",
                job_id=None,
                payload=payload,
                ids=[ids.new_id("msg") for _ in range(count)],
                endpoint_ids=[endpoint] * count,
            )
        served = Served(url, workers, f"webhooks-{workers}", CORTEX_ENGINE_ENABLED="false")
        await served.ready()
        received = await receiver.wait_for(count, 600)
        records = await receiver.dump()
    finally:
        served.stop()
        await receiver.stop()
    arrivals = sorted(record["arrived"] for record in records)
    middle = None
    if len(arrivals) >= 10:
        low, high = percentile(arrivals, 10), percentile(arrivals, 90)
        middle = 0.8 * len(arrivals) / max(high - low, 1e-9)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else None
    return {
        "deliveries": count,
        "received": received,
        "first_to_last_s": round(span, 2) if span else None,
        "per_s": round(count / span, 1) if span else None,
        "per_s_middle_80pct": round(middle, 1) if middle else None,
    }


async def followers_run(
    url: str, db: AsyncEngine, workers: int, key: str, load: Load, args: argparse.Namespace
) -> list[dict[str, Any]]:
    served = Served(
        url,
        workers,
        f"followers-{workers}",
        CORTEX_ENGINE_ENABLED="false",
        CORTEX_WEBHOOKS_ENABLED="false",
        # All followers use one key; the default quota is 100 streams per key.
        CORTEX_DEFAULT_MAX_STREAMS_PER_KEY="0",
    )
    try:
        await served.ready()
        return await followers_part(served, db, url, key, load, INSTANT_JOB, args)
    finally:
        served.stop()


async def processes_run(
    server: str, workers: int, args: argparse.Namespace, load: Load
) -> dict[str, Any]:
    url = await fresh_database(server)
    db = database.create_engine(url, pool_size=2)
    parts = args.parts.split(",")
    found: dict[str, Any] = {"processes": workers}
    try:
        key = await create_admin_key(db)
        print(f"-- {workers} process(es)", flush=True)
        for part in parts:
            before = load.sample()
            if part == "api":
                result: Any = await api_part(url, workers, key, args.duration)
            elif part == "engine":
                result = await engine_part(url, db, workers, args.queued, args.engine_seconds)
            elif part == "webhooks":
                result = await webhook_part(url, db, workers, key, args.deliveries)
            else:
                result = {"levels": await followers_run(url, db, workers, key, load, args)}
            result["load"] = between(before, load.sample())
            result["load"].pop("watched_cores")
            print(f"   {part} {result if part != 'followers' else result['load']}", flush=True)
            found[part] = result
        return found
    finally:
        await db.dispose()
        await _admin(server, f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)')


async def cursor_pages(
    server: str, counts: list[int], samples: int, load: Load
) -> list[dict[str, Any]]:
    """Seed each count of jobs (a database each: seed.py's ids repeat across seedings), then
    time the first page and pages at the start, middle and end of the cursor chain."""
    found = []
    for count in counts:
        url = await fresh_database(server)
        db = database.create_engine(url, pool_size=2)
        served: Served | None = None
        try:
            key = await create_admin_key(db)
            account = await account_of(db)
            before = load.sample()
            began = time.perf_counter()
            timings = await seed.seed_jobs(db, account, count)
            seeding = {
                "seconds": round(time.perf_counter() - began, 1),
                **between(before, load.sample()),
            }
            print(f"-- seeded {count:,} jobs: {seeding}", flush=True)
            served = Served(url, 1, "cursor", CORTEX_ENGINE_ENABLED="false")
            await served.ready()
            places = await time_pages(served, db, key, account, count, samples, load)
            for name, place in places.items():
                print(f"   {name} {place}", flush=True)
            found.append({"jobs": count, "seed": timings, "seeding": seeding, "pages": places})
        finally:
            if served is not None:
                served.stop()
            await db.dispose()
            await _admin(server, f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)')
    return found


# The gateway's page query (app/jobs/repository.py, default sort) for EXPLAIN: the same
# index, condition and limit; `SELECT *` reads the same heap pages as its summary columns.
_PAGE_SQL = (
    "SELECT * FROM jobs WHERE account_id = :a {after} ORDER BY created_at DESC, id DESC LIMIT 21"
)


async def explain_page(db: AsyncEngine, account: str, after: tuple[Any, str] | None) -> list[str]:
    condition = "AND (created_at, id) < (:c, :i)" if after else ""
    params: dict[str, Any] = {"a": account}
    if after:
        params |= {"c": after[0], "i": after[1]}
    async with database.reading(db) as connection:
        result = await connection.execute(
            sa.text("EXPLAIN (ANALYZE, BUFFERS) " + _PAGE_SQL.format(after=condition)), params
        )
        return [row[0] for row in result]


async def time_pages(
    served: Served,
    db: AsyncEngine,
    key: str,
    account: str,
    count: int,
    samples: int,
    load: Load,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    places = {}
    async with httpx.AsyncClient(base_url=served.top + API, headers=headers) as client:
        first = (await client.get("/jobs")).json()
        template = Cursor.decode(first["meta"]["pagination"]["nextCursor"])
        for name, fraction in (("first", None), ("start", 0.0), ("middle", 0.5), ("end", 0.9999)):
            params: dict[str, str] = {}
            row = None
            offset = 0
            if fraction is not None:
                offset = int(count * fraction)
                async with database.reading(db) as connection:
                    await connection.execute(sa.text("SET statement_timeout = 0"))
                    row = (
                        await connection.execute(
                            sa.text(
                                "SELECT created_at, id FROM jobs WHERE account_id = :a"
                                " ORDER BY created_at DESC, id DESC OFFSET :o LIMIT 1"
                            ),
                            {"a": account, "o": offset},
                        )
                    ).one()
                after = [_cursor_time(row.created_at, template.after[0]), row.id]
                cursor = Cursor(template.sort, after, offset // 20 + 2, template.query)
                params = {"cursor": cursor.encode()}
            times = []
            before = load.sample()
            for _ in range(samples):
                t0 = time.perf_counter()
                page = await client.get("/jobs", params=params)
                times.append(time.perf_counter() - t0)
                assert page.status_code == 200, page.text
            cores = between(before, load.sample())
            assert page.json()["data"], f"{name}: an empty page"
            plan = await explain_page(db, account, (row.created_at, row.id) if row else None)
            places[name] = {
                "offset": offset,
                "p50_ms": round(percentile(times, 50) * 1000, 2),
                "p99_ms": round(percentile(times, 99) * 1000, 2),
                "load": cores,
                "explain": plan,
            }
    return places


def _cursor_time(moment: datetime, example: Any) -> Any:
    """The row's created_at in the form the API's own cursors carry it."""
    if isinstance(example, str):
        text = moment.isoformat()
        return text.replace("+00:00", "Z") if example.endswith("Z") else text
    return example.__class__(moment.timestamp())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", default="1,2,4", help="comma list (default 1,2,4)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per API run")
    parser.add_argument("--queued", type=int, default=10_000, help="jobs for the engine part")
    parser.add_argument("--engine-seconds", type=float, default=45.0, help="engine window")
    parser.add_argument("--deliveries", type=int, default=5_000, help="webhook deliveries")
    parser.add_argument(
        "--parts", default="api,engine,webhooks,followers", help="comma list of parts to run"
    )
    parser.add_argument(
        "--followers",
        type=lambda text: [int(part) for part in text.split(",") if part],
        default=[100, 500, 1000],
        help="stream followers, opened in steps (connections are kept between steps)",
    )
    parser.add_argument("--stream-jobs", type=int, default=4, help="jobs the followers share")
    parser.add_argument("--line-rate", type=float, default=10.0, help="lines/s per job")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per follower step")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before a window")
    parser.add_argument("--grace", type=float, default=3.0, help="seconds for late lines")
    parser.add_argument("--cursor-jobs", default="", help="comma list of job counts to seed")
    parser.add_argument("--samples", type=int, default=200, help="pages timed per place")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args(sys.argv[1:])
    directory = Path(os.environ.get("CORTEX_BENCH_DIR", "/tmp")) / f"cortex-scale-{os.getpid()}"
    # Taken before anything runs: the package may be edited while a run goes on.
    code = code_fingerprint()
    started = datetime.now(UTC).isoformat()
    server = embedded_postgres.start(directory)
    load = Load(postmaster_pid(directory))
    try:
        if args.cursor_jobs:
            counts = [int(part) for part in args.cursor_jobs.split(",")]
            document: dict[str, Any] = {
                "machine": machine(),
                "settings": vars(args),
                "cursor_pages": asyncio.run(cursor_pages(server, counts, args.samples, load)),
            }
        else:
            runs = []
            for workers in [int(part) for part in args.processes.split(",")]:
                runs.append(asyncio.run(processes_run(server, workers, args, load)))
            document = {"machine": machine(), "settings": vars(args), "runs": runs}
    finally:
        embedded_postgres.stop_all()
        shutil.rmtree(directory, ignore_errors=True)
    document = {
        "started": started,
        "finished": datetime.now(UTC).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "code": code,
        **document,
    }
    path = write_results("scale_out", document)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
