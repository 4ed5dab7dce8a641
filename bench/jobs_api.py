"""Benchmark of the Jobs API: the real gateway against a bare Starlette + asyncpg app.

    /work/venv/bin/python bench/jobs_api.py --jobs 1000000
    /work/venv/bin/python bench/jobs_api.py --jobs 20000 --duration 3 --warmup 1   # quick

Steps: start an embedded PostgreSQL in a temporary directory (or use DATABASE_URL's
server), create and migrate a fresh database, create an API key for account `bench`, seed
N jobs in SQL, start the gateway and the bare app as uvicorn child processes, then drive
each scenario with a closed-loop load generator for a fixed time. Prints a table and writes
the full results to bench/results/. See bench/README.md for the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database, embedded_postgres, migrate
from app.auth import service as auth_service
from app.auth.scopes import Scope

import loadgen
import plans
import seed

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
API = "/api/plugin-core"
JOB_SPEC = {
    "provider": "local",
    "image": "busybox:latest",
    "cpu": 500,
    "memory": "64Mi",
    "storage": "1Gi",
    "duration": 60,
}
POST_TARGET_RATIO = 0.60
GET_P99_TARGET_MS = 20.0
# A run during which other processes used more than this many cores is repeated.
NOISY_OTHER_CORES = 0.25
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SNAPSHOT_ENV = "BENCH_GATEWAY_SNAPSHOT"
_SNAPSHOT_COMMIT_ENV = "BENCH_GATEWAY_COMMIT"


# --------------------------------------------------------------------------- database


def _admin(url: str, statement: str) -> None:
    async def run() -> None:
        engine = database.create_engine(url, pool_size=1)
        try:
            async with engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(sa.text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


async def create_bench_key(engine: AsyncEngine) -> tuple[str, str]:
    """A jobs:read + jobs:write key of account `bench`: (account id, secret)."""
    async with database.transaction(engine) as connection:
        created = await auth_service.create_key(
            connection, name="bench", account="bench", scopes=[Scope.JOBS_READ, Scope.JOBS_WRITE]
        )
    return str(created.key["account_id"]), created.secret


async def describe_database(engine: AsyncEngine) -> dict[str, Any]:
    names = (
        "server_version",
        "shared_buffers",
        "effective_cache_size",
        "work_mem",
        "max_connections",
        "synchronous_commit",
        "fsync",
        "random_page_cost",
        "jit",
    )
    async with engine.connect() as connection:
        settings = {
            name: (await connection.execute(sa.text(f"SHOW {name}"))).scalar_one() for name in names
        }
        sizes = (
            await connection.execute(
                sa.text(
                    "SELECT pg_size_pretty(pg_total_relation_size('jobs')),"
                    " pg_size_pretty(pg_total_relation_size('job_events')),"
                    " pg_size_pretty(pg_database_size(current_database()))"
                )
            )
        ).one()
        backend_pid = (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    return {
        "settings": settings,
        "jobs_total_size": sizes[0],
        "job_events_total_size": sizes[1],
        "database_size": sizes[2],
        "postmaster_pid": _parent_pid(backend_pid),
    }


# --------------------------------------------------------------------------- CPU accounting


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; the fields after its closing parenthesis do not.
    return text[text.rindex(")") + 2 :].split()


def _parent_pid(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if fields else None


def _cpu_seconds(fields: list[str], *, reaped_children: bool = False) -> float:
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime + cstime
    return ticks / _CLOCK_TICKS


def _postgres_cpu(postmaster_pid: int | None) -> float | None:
    """CPU seconds of the postmaster and its children (backends, walwriter, checkpointer)."""
    if postmaster_pid is None:
        return None
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _proc_stat(pid)
        if fields and pid == postmaster_pid:
            # Children that exited (autovacuum workers) leave their CPU to the postmaster.
            total += _cpu_seconds(fields, reaped_children=True)
        elif fields and int(fields[1]) == postmaster_pid:
            total += _cpu_seconds(fields)
    return total


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / _CLOCK_TICKS, sum(values) / _CLOCK_TICKS


def cpu_probe(server_pid: int, postmaster_pid: int | None) -> dict[str, Any]:
    own = os.times()
    server = _proc_stat(server_pid)
    busy, total = _machine_cpu()
    return {
        "time": time.perf_counter(),
        "loadgen": own.user + own.system,
        "server": _cpu_seconds(server) if server else None,
        "postgres": _postgres_cpu(postmaster_pid),
        "machine_busy": busy,
        "machine_total": total,
    }


def cpu_report(probes: tuple[dict[str, Any], dict[str, Any]], requests: int) -> dict[str, Any]:
    """CPU per request (ms) for each party, and how busy the machine was overall."""
    first, last = probes
    per_request: dict[str, float | None] = {}
    for party in ("loadgen", "server", "postgres"):
        if first[party] is None or last[party] is None:
            per_request[party] = None
        else:
            per_request[party] = 1000 * (last[party] - first[party]) / max(requests, 1)
    busy = last["machine_busy"] - first["machine_busy"]
    total = last["machine_total"] - first["machine_total"]
    elapsed = last["time"] - first["time"]
    ours = sum(v for v in per_request.values() if v is not None) * requests / 1000
    return {
        "ms_per_request": per_request,
        "machine_busy_pct": 100 * busy / total if total else None,
        # Cores' worth of CPU that none of the benchmark's processes used: other work on the
        # machine (and some kernel time for the loopback traffic). High means noisy figures.
        "other_cores": (busy - ours) / elapsed if elapsed > 0 else None,
    }


def other_cores(report: dict[str, Any]) -> float:
    cpu = report["cpu"] or {}
    return float(cpu.get("other_cores") or 0.0)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(
    kind: str, database_url: str, account_id: str, max_active_jobs: int | None = None
) -> Server:
    port = free_port()
    command = [sys.executable, str(BENCH_DIR / "serve.py"), kind, "--port", str(port)]
    command += ["--database-url", database_url, "--account-id", account_id]
    if max_active_jobs is not None:
        command += ["--max-active-jobs", str(max_active_jobs)]
    return Server(kind, port, subprocess.Popen(command))


# What finish_jobs does to the account's pending jobs a while after they were created, as an
# engine running them for that long would: then the active-jobs quota never fills.
_FINISH_JOBS = sa.text(
    """
    UPDATE jobs SET status = 'completed', started_at = created_at, ended_at = now(),
                    updated_at = now()
    WHERE account_id = :account_id AND status = 'pending'
      AND created_at < now() - make_interval(secs => :after)
    """
)


async def finish_jobs(engine: AsyncEngine, account_id: str, after_s: float) -> None:
    """Every 100 ms, complete the account's jobs pending for more than `after_s` seconds."""
    while True:
        async with engine.begin() as connection:
            await connection.execute(_FINISH_JOBS, {"account_id": account_id, "after": after_s})
        await asyncio.sleep(0.1)


async def wait_ready(server: Server, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"the {server.kind} server exited: {server.process.returncode}")
            try:
                if (await client.get("/__bench/stats")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {server.kind} server did not start in {timeout_s} s")
            await asyncio.sleep(0.1)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


async def server_stats(server: Server) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/__bench/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


# --------------------------------------------------------------------------- scenarios


@dataclass
class Target:
    """One request shape against one app."""

    scenario: str
    app: str
    method: str
    path: str
    expect_status: int
    body: bytes = b""


def _decode_cursor_after(cursor: str) -> list[Any]:
    raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    after: list[Any] = raw["a"]
    return after


async def prepare_list_targets(
    gateway: Server, bare: Server, secret: str, deep_pages: int, jobs: int
) -> tuple[list[Target], dict[str, Any]]:
    """The GET targets; checks on the way that both apps answer with the same rows."""
    auth = {"Authorization": f"Bearer {secret}"}
    checks: dict[str, Any] = {}
    async with (
        httpx.AsyncClient(base_url=gateway.base_url, headers=auth, timeout=60) as gw,
        httpx.AsyncClient(base_url=bare.base_url, timeout=60) as br,
    ):
        first = (await gw.get(f"{API}/jobs")).json()
        checks["gateway_total"] = first["meta"]["pagination"]["total"]
        if checks["gateway_total"] != jobs:
            raise RuntimeError(f"gateway reports {checks['gateway_total']} jobs, seeded {jobs}")

        # Walk the cursor chain to a deep page, as a client paging through history would.
        cursor = first["meta"]["pagination"]["nextCursor"]
        for _ in range(deep_pages - 1):
            page = (await gw.get(f"{API}/jobs", params={"cursor": cursor})).json()
            cursor = page["meta"]["pagination"]["nextCursor"]
        deep = (await gw.get(f"{API}/jobs", params={"cursor": cursor})).json()
        checks["deep_page_number"] = deep["meta"]["pagination"]["page"]
        after_created, after_id = _decode_cursor_after(cursor)
        checks["deep_cursor_after"] = [after_created, after_id]
        after = urllib.parse.quote(f"{after_created},{after_id}", safe="")
        quoted_cursor = urllib.parse.quote(cursor, safe="")

        shapes = {
            "list_default": ("", ""),
            "list_status_running": ("?status=running", "?status=running"),
            "list_provider_akash": ("?provider=akash", "?provider=akash"),
            f"list_deep_cursor_p{checks['deep_page_number']}": (
                f"?cursor={quoted_cursor}",
                f"?after={after}",
            ),
        }
        targets: list[Target] = []
        for scenario, (gw_query, bare_query) in shapes.items():
            gw_page = (await gw.get(f"{API}/jobs{gw_query}")).json()
            bare_page = (await br.get(f"/jobs{bare_query}")).json()
            gw_ids = [job["id"] for job in gw_page["data"]]
            if gw_ids != [job["id"] for job in bare_page["data"]]:
                raise RuntimeError(f"{scenario}: the gateway and the bare app list other rows")
            # A small --jobs can leave a filter with less than a page (few running jobs).
            checks[f"{scenario}_page_rows"] = len(gw_ids)
            if gw_page["meta"]["pagination"]["total"] != bare_page["meta"]["total"]:
                raise RuntimeError(f"{scenario}: the gateway and the bare app count differently")
            checks[f"{scenario}_total"] = bare_page["meta"]["total"]
            targets.append(Target(scenario, "gateway", "GET", f"{API}/jobs{gw_query}", 200))
            targets.append(Target(scenario, "bare", "GET", f"/jobs{bare_query}", 200))
    return targets, checks


def post_targets() -> list[Target]:
    body = json.dumps(JOB_SPEC).encode()
    return [
        Target("create_job", "gateway", "POST", f"{API}/jobs", 201, body),
        Target("create_job", "bare", "POST", "/jobs", 201, body),
    ]


async def run_target(
    target: Target,
    server: Server,
    *,
    secret: str,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    postmaster_pid: int | None,
) -> dict[str, Any]:
    label = f"{target.scenario}@c{concurrency}"
    headers = {"Content-Type": "application/json"} if target.body else {}
    if target.app == "gateway":
        headers["Authorization"] = f"Bearer {secret}"

    def request(request_label: str) -> bytes:
        return loadgen.build_request(
            target.method,
            target.path,
            port=server.port,
            label=request_label,
            headers=headers,
            body=target.body,
        )

    # Forget earlier runs (a repeated noisy run reuses its label).
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        (await client.post("/__bench/reset")).raise_for_status()
    result = await loadgen.run_load(
        server.port,
        measured=request(label),
        warmup=request("warmup"),
        expect_status=target.expect_status,
        concurrency=concurrency,
        warmup_s=warmup_s,
        duration_s=duration_s,
        probe=lambda: cpu_probe(server.process.pid, postmaster_pid),
    )
    server_side = (await server_stats(server))["labels"].get(label, {})
    report = {
        "scenario": target.scenario,
        "app": target.app,
        "method": target.method,
        "path": target.path[:120],
        "client": result.summary(),
        "server": server_side,
        "cpu": cpu_report(result.probes, result.requests) if result.probes else None,
    }
    _print_row(report)
    return report


# --------------------------------------------------------------------------- reporting

_HEADER = (
    f"{'scenario':<26} {'app':<8} {'c':>3} {'req/s':>8} "
    f"{'client p50/p95/p99 ms':>22} {'server p50/p95/p99 ms':>22} {'db p50':>7} {'rt':>4} "
    f"{'cpu ms/req srv/pg/gen':>22} {'busy%':>5} {'other':>5} {'err':>4}"
)


def _fmt3(summary: dict[str, Any]) -> str:
    if not summary or not summary.get("count"):
        return "-"
    return f"{summary['p50']:.2f}/{summary['p95']:.2f}/{summary['p99']:.2f}"


def _print_row(report: dict[str, Any]) -> None:
    client, server, cpu = report["client"], report["server"], report["cpu"] or {}
    per_request = cpu.get("ms_per_request", {})
    cpu_text = "/".join(
        f"{per_request[p]:.2f}" if per_request.get(p) is not None else "-"
        for p in ("server", "postgres", "loadgen")
    )
    busy = cpu.get("machine_busy_pct")
    sql_p50 = server.get("db", {}).get("p50")
    print(
        f"{report['scenario']:<26} {report['app']:<8} {client['concurrency']:>3} "
        f"{client['throughput_rps']:>8.0f} {_fmt3(client['latency_ms']):>22} "
        f"{_fmt3(server.get('total', {})):>22} "
        f"{(f'{sql_p50:.2f}' if sql_p50 is not None else '-'):>7} "
        f"{server.get('db_round_trips_per_request', 0):>4.1f} {cpu_text:>22} "
        f"{(f'{busy:.0f}' if busy is not None else '-'):>5} {other_cores(report):>5.2f}"
        f" {client['errors']:>4}",
        flush=True,
    )


def print_plans(query_plans: dict[str, Any]) -> None:
    print("\nEXPLAIN ANALYZE of the gateway's list queries (execution time, top node):")
    for name, plan in query_plans.items():
        for kind in ("custom", "generic"):
            ms = plan[kind]["execution_ms"]
            print(f"  {name:<22} {kind:<8} {ms:8.3f} ms  {plan[kind]['top'][:70]}")


def evaluate_targets(reports: list[dict[str, Any]], jobs: int) -> dict[str, Any]:
    """The two stated targets, from the measured figures."""

    def find(scenario: str, app: str, concurrency: int) -> dict[str, Any] | None:
        for report in reports:
            if (
                report["scenario"] == scenario
                and report["app"] == app
                and report["client"]["concurrency"] == concurrency
            ):
                return report
        return None

    verdict: dict[str, Any] = {"jobs": jobs}
    posts = [r for r in reports if r["scenario"] == "create_job"]
    if posts:
        concurrency = posts[0]["client"]["concurrency"]
        gateway, bare = (
            find("create_job", "gateway", concurrency),
            find("create_job", "bare", concurrency),
        )
        if gateway and bare:
            ratio = gateway["client"]["throughput_rps"] / bare["client"]["throughput_rps"]
            clean = not gateway["client"]["errors"] and not bare["client"]["errors"]
            verdict["post_throughput_ratio"] = ratio
            # A run with failed requests measures the failure path: it proves nothing.
            verdict["post_target_met"] = clean and ratio >= POST_TARGET_RATIO
            verdict["post_errors"] = not clean
    gets = []
    for report in reports:
        if report["app"] == "gateway" and report["method"] == "GET":
            p99 = report["server"].get("total", {}).get("p99")
            gets.append(
                {
                    "scenario": report["scenario"],
                    "concurrency": report["client"]["concurrency"],
                    "server_p99_ms": p99,
                    "errors": report["client"]["errors"],
                    "met": p99 is not None
                    and p99 < GET_P99_TARGET_MS
                    and not report["client"]["errors"],
                }
            )
    verdict["get_p99"] = gets
    return verdict


def markdown_report(results: dict[str, Any]) -> str:
    """The results file as the Markdown tables bench/README.md quotes."""

    def ms(summary: dict[str, Any]) -> str:
        if not summary or not summary.get("count"):
            return "-"
        return f"{summary['p50']:.1f} / {summary['p95']:.1f} / {summary['p99']:.1f}"

    def cpu(report: dict[str, Any], party: str) -> str:
        value = ((report["cpu"] or {}).get("ms_per_request") or {}).get(party)
        return "-" if value is None else f"{value:.2f}"

    lines = [
        "| scenario | app | conc. | req/s | client p50 / p95 / p99 ms"
        " | server p50 / p95 / p99 ms | DB round trips | CPU ms/req server / PG | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for report in results["results"]:
        client, server = report["client"], report["server"]
        lines.append(
            f"| {report['scenario']} | {report['app']} | {client['concurrency']}"
            f" | {client['throughput_rps']:.0f} | {ms(client['latency_ms'])}"
            f" | {ms(server.get('total', {}))}"
            f" | {server.get('db_round_trips_per_request', 0):.0f}"
            f" | {cpu(report, 'server')} / {cpu(report, 'postgres')} | {client['errors']} |"
        )
    return "\n".join(lines)


def print_verdict(verdict: dict[str, Any]) -> None:
    print(f"\nTargets (at {verdict['jobs']:,} jobs in one account):")
    if "post_throughput_ratio" in verdict:
        print(
            f"  POST /jobs gateway/bare throughput: {verdict['post_throughput_ratio']:.0%}"
            f" (target >= {POST_TARGET_RATIO:.0%}):"
            f" {'MET' if verdict['post_target_met'] else 'NOT MET'}"
            + (" (requests failed: see the err column)" if verdict["post_errors"] else "")
        )
    for item in verdict["get_p99"]:
        p99 = item["server_p99_ms"]
        print(
            f"  GET {item['scenario']} @c{item['concurrency']}: server p99"
            f" {p99:.2f} ms (target < {GET_P99_TARGET_MS:.0f} ms):"
            f" {'MET' if item['met'] else 'NOT MET'}"
            + (f" ({item['errors']} requests failed)" if item["errors"] else "")
        )


def _git(*command: str) -> str:
    try:
        done = subprocess.run(
            ["git", *command], cwd=BENCH_DIR.parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def gateway_tree() -> dict[str, Any]:
    """Which gateway code ran: a snapshot of a commit (--gateway-ref), or the working tree
    with the files changed since its commit."""
    import app

    if os.environ.get(_SNAPSHOT_ENV):
        return {
            "commit": os.environ.get(_SNAPSHOT_COMMIT_ENV),
            "snapshot": True,
            "imported_from": str(Path(app.__file__).parent),
        }
    changed = _git("status", "--porcelain", "--", "app")
    return {
        "commit": _git("rev-parse", "HEAD") or None,
        "snapshot": False,
        "uncommitted_gateway_files": [line[3:] for line in changed.splitlines()],
    }


def run_against_snapshot(ref: str) -> int:
    """Re-run this benchmark with `git archive <ref> app` first on PYTHONPATH.

    The gateway package is edited while benchmarks run; a snapshot keeps the code (and its
    migrations) fixed from seeding to the last request, and names what was measured.
    """
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    if not commit:
        raise SystemExit(f"--gateway-ref {ref!r} is not a commit of this repository")
    snapshot = Path(tempfile.mkdtemp(prefix="cortex-gateway-src-"))
    try:
        archive = subprocess.run(
            ["git", "archive", commit, "app"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive, check=True)
        python_path = os.pathsep.join(filter(None, [str(snapshot), os.environ.get("PYTHONPATH")]))
        env = {
            **os.environ,
            "PYTHONPATH": python_path,
            _SNAPSHOT_ENV: str(snapshot),
            _SNAPSHOT_COMMIT_ENV: commit,
        }
        return subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=env).returncode
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)


def environment(database_info: dict[str, Any]) -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            return None

    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model,
            "cores": os.cpu_count(),
            "memory_gib": round(mem_kb / 2**20, 1),
            "kernel": platform.release(),
        },
        "python": platform.python_version(),
        "gateway_tree": gateway_tree(),
        "packages": {
            name: version(name)
            for name in ("starlette", "uvicorn", "uvloop", "httptools", "sqlalchemy", "asyncpg")
        },
        "server_stack": "uvicorn, 1 worker, "
        + ("uvloop" if version("uvloop") else "asyncio")
        + " + "
        + ("httptools" if version("httptools") else "h11"),
        "database": database_info,
    }


# --------------------------------------------------------------------------- main


async def run_benchmark(args: argparse.Namespace, url: str) -> dict[str, Any]:
    engine = database.create_engine(url, pool_size=2)
    servers: list[Server] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        account_id, secret = await create_bench_key(engine)
        print(f"seeding {args.jobs:,} jobs for account bench ({account_id}) ...", flush=True)

        def progress(done: int, elapsed: float) -> None:
            print(f"  {done:>9,} jobs  {elapsed:6.1f} s", flush=True)

        seeding = await seed.seed_jobs(
            engine, account_id, args.jobs, chunk_size=args.chunk_size, progress=progress
        )
        print(
            f"seeded in {seeding['insert_s']:.1f} s,"
            f" VACUUM ANALYZE {seeding['vacuum_analyze_s']:.1f} s",
            flush=True,
        )
        database_info = await describe_database(engine)
        env = environment(database_info)
        postmaster_pid = database_info["postmaster_pid"]

        gateway = start_server("gateway", url, account_id, args.max_active_jobs)
        servers.append(gateway)
        bare = start_server("bare", url, account_id)
        servers.append(bare)
        await asyncio.gather(wait_ready(gateway), wait_ready(bare))
        by_app = {"gateway": gateway, "bare": bare}

        list_targets, checks = await prepare_list_targets(
            gateway, bare, secret, args.deep_pages, args.jobs
        )
        deep_after = checks["deep_cursor_after"]
        query_plans = await plans.explain_list_queries(
            engine, account_id, [datetime.fromisoformat(deep_after[0]), deep_after[1]]
        )
        print_plans(query_plans)
        runs: list[tuple[Target, int]] = []
        concurrencies = [args.concurrency]
        if args.latency_concurrency and args.latency_concurrency != args.concurrency:
            concurrencies.append(args.latency_concurrency)
        if "list" in args.scenarios:
            runs += [(t, c) for c in concurrencies for t in list_targets]
        # Writes last: they add jobs and count deltas the list scenarios would then see.
        if "create" in args.scenarios:
            runs += [(t, args.concurrency) for t in post_targets()]

        print(
            f"\n{len(runs)} runs of {args.warmup:g} s warmup + {args.duration:g} s"
            f" (load generator, servers and PostgreSQL share {os.cpu_count()} cores)\n"
        )
        print(_HEADER)
        if args.max_active_jobs is not None and "create" in args.scenarios:
            finisher = asyncio.create_task(finish_jobs(engine, account_id, args.finish_after))
            tasks.append(finisher)
        reports = []
        for target, concurrency in runs:
            attempts = []
            for _ in range(1 + args.noisy_retries):
                attempts.append(
                    await run_target(
                        target,
                        by_app[target.app],
                        secret=secret,
                        concurrency=concurrency,
                        warmup_s=args.warmup,
                        duration_s=args.duration,
                        postmaster_pid=postmaster_pid,
                    )
                )
                if other_cores(attempts[-1]) <= NOISY_OTHER_CORES:
                    break
                print(
                    f"  ^ other processes used {other_cores(attempts[-1]):.2f} cores"
                    " during that run" + ("; again:" if len(attempts) <= args.noisy_retries else "")
                )
            # The quietest attempt stands; the others stay in the record.
            best = min(attempts, key=other_cores)
            best["discarded_noisy_attempts"] = [a for a in attempts if a is not best]
            reports.append(best)
        verdict = evaluate_targets(reports, args.jobs)
        print_verdict(verdict)
        return {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "config": {
                key: getattr(args, key)
                for key in (
                    "jobs",
                    "duration",
                    "warmup",
                    "concurrency",
                    "latency_concurrency",
                    "deep_pages",
                    "chunk_size",
                    "gateway_ref",
                    "noisy_retries",
                    "max_active_jobs",
                    "finish_after",
                )
            },
            "environment": env,
            "seeding": seeding,
            "query_plans": query_plans,
            "checks": checks,
            "results": reports,
            "targets": verdict,
        }
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in servers:
            stop_server(server)
        await engine.dispose()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs to seed (1,000,000)")
    parser.add_argument("--duration", type=float, default=10, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warmup per run")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument(
        "--latency-concurrency",
        type=int,
        default=1,
        help="also run the GET scenarios at this concurrency, to see latency without"
        " queueing (1; 0 to skip)",
    )
    parser.add_argument("--deep-pages", type=int, default=50, help="cursor pages to follow")
    parser.add_argument("--chunk-size", type=int, default=50_000, help="jobs per seed INSERT")
    parser.add_argument(
        "--scenarios",
        default="list,create",
        type=lambda value: set(value.split(",")),
        help="comma-separated subset of: list, create",
    )
    parser.add_argument(
        "--noisy-retries",
        type=int,
        default=2,
        help=f"repeat a run up to this many times while other processes use more than"
        f" {NOISY_OTHER_CORES} cores during it (2)",
    )
    parser.add_argument(
        "--report",
        metavar="RESULTS_JSON",
        help="only print the Markdown tables of an earlier run's results file",
    )
    parser.add_argument(
        "--gateway-ref",
        help="benchmark the gateway package as of this git commit (e.g. HEAD) instead of"
        " the working tree, which may be mid-edit",
    )
    parser.add_argument(
        "--max-active-jobs",
        type=int,
        help="the gateway's active-jobs quota (default: out of reach, 100,000,000); with it"
        " given, the create runs complete the account's jobs --finish-after seconds after"
        " their creation, as an engine finishing them would, so that the quota never fills",
    )
    parser.add_argument(
        "--finish-after",
        type=float,
        default=1.0,
        help="seconds a job stays pending with --max-active-jobs (1)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 21 * (args.deep_pages + 1):
        parser.error("--jobs is too small for --deep-pages pages of 20")
    return args


def main() -> None:
    args = parse_args()
    if args.report:
        print(markdown_report(json.loads(Path(args.report).read_text())))
        return
    if args.gateway_ref and not os.environ.get(_SNAPSHOT_ENV):
        sys.exit(run_against_snapshot(args.gateway_ref))
    if os.environ.get(_SNAPSHOT_ENV):
        import app

        # The snapshot must win over the editable install, or the run measures the wrong code.
        assert Path(app.__file__).is_relative_to(os.environ[_SNAPSHOT_ENV])
    temp_dir: Path | None = None
    drop_url: tuple[str, str] | None = None
    try:
        if os.environ.get("DATABASE_URL"):
            server_url = database.normalize_url(os.environ["DATABASE_URL"])
        else:
            temp_dir = Path(tempfile.mkdtemp(prefix="cortex-bench-"))
            print(f"starting embedded PostgreSQL in {temp_dir} ...", flush=True)
            server_url = embedded_postgres.start(temp_dir)
        name = f"cortex_bench_{secrets.token_hex(4)}"
        _admin(server_url, f'CREATE DATABASE "{name}"')
        drop_url = (server_url, name)
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(url)

        # The load generator gets the fast event loop too, when installed.
        runner: Any = asyncio.run
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
        results = runner(run_benchmark(args, url))

        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS_DIR / f"jobs_api-{args.jobs}-{stamp}.json"
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nresults: {path.relative_to(BENCH_DIR.parent)}")
    finally:
        if drop_url is not None and temp_dir is None:
            _admin(drop_url[0], f'DROP DATABASE IF EXISTS "{drop_url[1]}" WITH (FORCE)')
        if temp_dir is not None:
            embedded_postgres.stop_all()
            shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
