"""Benchmark of the job engine on the local provider (issue 3).

    /work/venv/bin/python bench/engine_latency.py                    # quick: N=30, M=100
    /work/venv/bin/python bench/engine_latency.py --concurrent 100,250,500
    /work/venv/bin/python bench/engine_latency.py --skip-latency --concurrent 500 \
        --ramp-seconds 150 --settle-seconds 150
    /work/venv/bin/python bench/engine_latency.py --concurrent ""   # part 1 only

Part 1, latency: a trivial container (busybox:latest running `true`) submitted through the
gateway (POST /jobs, then the job's events followed over SSE until `completed`) against the
same container run directly on the Docker Engine API, N runs each, interleaved: once as a
Docker client does it (create, place the job spec file, start, POST /wait, remove), once
learning the exit by inspecting every 5 ms (podman's /wait answers ~0.3 s late for a container
that has just exited), and once more like that without the spec file (the runtime's floor).
The gateway places /cortex/spec/job.json in every container, so the direct runs do too: the
same container. p50/p95/p99 and the ratios; the target is judged against the polling client.

Part 2, concurrency: M jobs that sleep until a chosen moment on the host's boot clock, so
the moment each container exits is known (it also prints it). Measured: how long until all
are running; the gateway's CPU and RSS, Postgres' and podman's CPU and the Docker API
requests per second while the engine follows them (counted by a small proxy in front of the
Docker socket), and the state of the gateway's HTTP connection pools; then, as they exit
(spread over a few seconds), the delay from each container's exit to its job being recorded
completed.

Everything runs on this machine and is started and stopped by the script: an embedded
PostgreSQL in a temporary directory, a podman API service of the run's own (its CPU is then
the run's alone; --docker-host uses an existing Docker API instead), the gateway under
uvicorn in a child process (so that its CPU is its own), the counting proxy in another.
bench/sse_followers.py and bench/webhook_throughput.py use this file's harness.
Results go to bench/results/engine_latency-<time>.json with the child processes' logs
beside them; see bench/ENGINE_STREAMS_WEBHOOKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database, embedded_postgres, migrate
from app.auth import service as auth_service
from app.auth.scopes import Scope
from providers.local import spec_archive

SCRIPT = Path(__file__).resolve()
BENCH_DIR = SCRIPT.parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
API = "/api/plugin-core"
DOCKER_API = "/v1.41"
IMAGE = "busybox:latest"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# The job the gateway runs and its direct twin: same image, command and resource limits, so
# the ratio measures the gateway and not a difference in container configuration.
CPU_MILLICORES, MEMORY = 500, "64Mi"
MEMORY_BYTES = 64 * 2**20
LATENCY_TARGET_RATIO = 1.25
TERMINAL = ("completed", "failed", "cancelled")
DIRECT_LABEL = "cortex.bench.run"


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """count, mean, p50/p95/p99 and max in milliseconds of durations given in seconds."""
    if not seconds:
        return {"count": 0}
    return {
        "count": len(seconds),
        "mean": 1000 * sum(seconds) / len(seconds),
        "p50": 1000 * percentile(seconds, 50),
        "p95": 1000 * percentile(seconds, 95),
        "p99": 1000 * percentile(seconds, 99),
        "max": 1000 * max(seconds),
    }


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "-+-".join("-" * w for w in widths)
    body = [" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, rule, *body])


# --------------------------------------------------------------------------- processes


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may contain spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rpartition(")")[2].split()


def cpu_seconds(pid: int, *, with_reaped_children: bool = False) -> float:
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def postgres_cpu(postmaster: int) -> float:
    """The server's CPU: the postmaster, the backends that exited (its reaped children) and
    the live ones."""
    total = cpu_seconds(postmaster, with_reaped_children=True)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[1] == str(postmaster):
                total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def find_process(*needles: bytes) -> int | None:
    """A process whose command line holds every needle (read-only lookup, e.g. podman's API
    service, to report its CPU)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if all(needle in cmdline for needle in needles):
            return int(entry.name)
    return None


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class Snapshot:
    wall: float
    cpu: dict[str, float]
    busy: int
    total: int
    gateway_rss: int
    docker_requests: dict[str, int] | None


@dataclass
class Probe:
    """CPU and memory of the processes a run involves, sampled from /proc."""

    gateway_pid: int
    postmaster_pid: int | None
    podman_pid: int | None = None
    # More processes to account for, by name (the Docker proxy, a webhook receiver...).
    others: dict[str, int] = field(default_factory=dict)
    proxy_stats: Path | None = None

    def snapshot(self) -> Snapshot:
        cpu = {"gateway": cpu_seconds(self.gateway_pid), "bench": cpu_seconds(os.getpid())}
        if self.postmaster_pid is not None:
            cpu["postgres"] = postgres_cpu(self.postmaster_pid)
        if self.podman_pid is not None:
            cpu["podman"] = cpu_seconds(self.podman_pid, with_reaped_children=True)
        for name, pid in self.others.items():
            cpu[name] = cpu_seconds(pid)
        busy, total = machine_jiffies()
        requests = None
        if self.proxy_stats is not None:
            with contextlib.suppress(OSError, ValueError):
                requests = json.loads(self.proxy_stats.read_text())
        return Snapshot(time.monotonic(), cpu, busy, total, rss_bytes(self.gateway_pid), requests)


def usage(first: Snapshot, last: Snapshot) -> dict[str, Any]:
    """Cores used per process group between two snapshots, and by the machine as a whole."""
    wall = max(last.wall - first.wall, 1e-9)
    cores = {name: (last.cpu[name] - first.cpu.get(name, 0.0)) / wall for name in last.cpu}
    machine = (last.busy - first.busy) / max(last.total - first.total, 1) * (os.cpu_count() or 1)
    result: dict[str, Any] = {
        "seconds": wall,
        "cores": cores,
        "machine_busy_cores": machine,
        "other_cores": max(machine - sum(cores.values()), 0.0),
        "gateway_rss_mib": last.gateway_rss / 2**20,
    }
    if first.docker_requests is not None and last.docker_requests is not None:
        kinds = Counter(last.docker_requests)
        kinds.subtract(first.docker_requests)
        result["docker_requests_per_s"] = {k: v / wall for k, v in sorted(kinds.items()) if v}
        result["docker_requests_per_s_total"] = sum(kinds.values()) / wall
    return result


# --------------------------------------------------------------------------- environment


def shared_runtime() -> str:
    """DOCKER_HOST when it is set, else what scripts/container-runtime provides (it installs
    podman and builds the offline image busybox:latest on first use)."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    export = subprocess.run(
        [str(ROOT / "scripts" / "container-runtime")],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout.strip()
    return export.rpartition("=")[2]


class ContainerRuntime:
    """The Docker Engine API a run talks to.

    By default a podman API service of the run's own, on a socket in the run's directory
    (same image store as the project's): its CPU is then this run's alone, and nobody else's
    containers or test runs share it. With an explicit `docker_host` (e.g. a real Docker),
    that one is used and its process looked up for CPU figures."""

    def __init__(self, directory: Path, docker_host: str | None) -> None:
        self.given = docker_host
        self.socket = directory / "podman.sock"
        self.url = docker_host or f"unix://{self.socket}"
        self.process: asyncio.subprocess.Process | None = None
        self.pid: int | None = None

    async def start(self) -> str:
        if self.given:
            path = self.given.removeprefix("unix://").encode()
            self.pid = find_process(b"system", b"service", path) or find_process(b"dockerd")
            return self.url
        env = {**os.environ, "CONTAINERS_CONF": str(ROOT / ".runtime" / "containers.conf")}
        with log_file(RUN_NAME, "podman").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                "podman",
                "system",
                "service",
                "--time=0",
                self.url,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.process.pid
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket))
        async with httpx.AsyncClient(transport=transport, base_url="http://docker") as client:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/_ping")).status_code == 200:
                        return self.url
                await asyncio.sleep(0.05)
        raise RuntimeError("the podman service did not start")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def code_fingerprint() -> dict[str, Any]:
    """Which gateway code ran: the commit, and a hash of the package as it is on disk (the
    package is edited while benchmarks run, so the commit alone may not say)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "app").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())

    def git(*command: str) -> str:
        result = subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "package_differs_from_commit": bool(git("status", "--porcelain", "app")),
        "package_sha256": digest.hexdigest()[:16],
    }


def machine() -> dict[str, Any]:
    memory = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(int(memory) / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# One stamp per run, shared by the results file and the logs kept beside it.
RUN_STAMP = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
RUN_NAME = Path(sys.argv[0]).stem


def write_results(name: str, document: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{RUN_STAMP}.json"
    path.write_text(json.dumps(document, indent=2, default=str))
    return path


def log_file(name: str, label: str) -> Path:
    """Where a child process of this run logs: kept with the results (git-ignored)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return RESULTS_DIR / f"{name}-{RUN_STAMP}-{label}.log"


class Database:
    """An embedded PostgreSQL in a temporary directory, with one fresh migrated database."""

    def __init__(self) -> None:
        # Short path: the server's unix socket lives in here, and socket paths are limited.
        self.directory = Path(tempfile.mkdtemp(prefix="cortex-bench-"))
        self.url = ""

    def start(self) -> str:
        server = embedded_postgres.start(self.directory)
        name = f"cortex_bench_{secrets.token_hex(4)}"
        asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
        self.url = make_url(server).set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(self.url)
        return self.url

    @property
    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.directory / "postgres" / "postmaster.pid").read_text().split()[0])
        return None

    def close(self) -> None:
        embedded_postgres.stop_all()
        shutil.rmtree(self.directory, ignore_errors=True)


async def _admin(url: str, statement: str) -> None:
    engine = database.create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def create_admin_key(db: AsyncEngine) -> str:
    async with database.transaction(db) as connection:
        created = await auth_service.create_key(
            connection, name="bench", account="bench", scopes=[Scope.ADMIN]
        )
    return created.secret


async def pg_transactions(db: AsyncEngine) -> int:
    """Transactions the database has finished so far (commits and rollbacks; SQLAlchemy's
    pool pre-ping and every connection's return to the pool count too)."""
    async with db.connect() as connection:
        result = await connection.execute(
            sa.text(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        )
        return int(result.scalar_one())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Gateway:
    """The gateway under uvicorn in a child process (this script, run with `_serve`)."""

    def __init__(
        self, database_url: str, settings: dict[str, Any], docker: str, log_path: Path
    ) -> None:
        self.database_url = database_url
        self.settings = settings
        self.docker = docker
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        command = [
            sys.executable,
            str(SCRIPT),
            "_serve",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            "--settings",
            json.dumps(self.settings),
        ]
        env = {**os.environ, "DOCKER_HOST": self.docker}
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(600):
                if self.process.returncode is not None:
                    raise RuntimeError(f"the gateway exited; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{API}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the gateway did not answer; see {self.log_path}")

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log_problems(self) -> dict[str, Any]:
        """How many warnings/errors the gateway logged, and the first few distinct ones."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return {"lines": 0, "examples": []}
        flagged = [
            line
            for line in lines
            if any(word in line for word in ("Traceback", "ERROR", "failed", "lost", "Error"))
        ]
        examples = list(dict.fromkeys(line[:200] for line in flagged))[:5]
        return {
            "file": str(self.log_path.relative_to(ROOT)),
            "lines": len(flagged),
            "examples": examples,
        }


POOL_STATS_PATH = "/__bench/http-pools"


class HttpPoolStats:
    """ASGI wrapper (the gateway's code stays untouched): GET /__bench/http-pools describes
    every httpcore connection pool in the process (the local provider's Docker client, the
    webhook client): connections by state and requests waiting. For diagnosis between
    phases only: it walks the garbage collector's objects (~0.1 s)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != POOL_STATS_PATH:
            await self.app(scope, receive, send)
            return
        body = json.dumps(self.pools()).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def pools() -> list[dict[str, Any]]:
        import gc

        import httpcore

        found = []
        for pool in gc.get_objects():
            if isinstance(pool, httpcore.AsyncConnectionPool):
                states: Counter[str] = Counter()
                for connection in pool.connections:
                    text = repr(connection)
                    state = next(
                        (s for s in ("CONNECTING", "ACTIVE", "IDLE", "CLOSED") if s in text),
                        "OTHER",
                    )
                    states[state] += 1
                found.append(
                    {
                        "max_connections": pool._max_connections,
                        "connections": len(pool.connections),
                        "by_state": dict(states),
                        "requests": len(pool._requests),
                    }
                )
        return found


async def http_pools(gateway_url: str) -> list[dict[str, Any]] | None:
    """The gateway's httpcore pools (see HttpPoolStats), or None if it does not answer."""
    try:
        async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
            pools: list[dict[str, Any]] = (await client.get(POOL_STATS_PATH)).json()
            return pools
    except (httpx.HTTPError, ValueError):
        return None


def serve(argv: Sequence[str]) -> None:
    """Child process: the gateway as it ships, with the given settings, under uvicorn."""
    import importlib.util

    import uvicorn

    from app.application import create_app
    from app.settings import Settings

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--settings", required=True)
    args = parser.parse_args(argv)
    settings = Settings(**json.loads(args.settings))
    uvicorn.run(
        HttpPoolStats(create_app(settings, database_url=args.database_url)),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


# --------------------------------------------------------------------------- docker proxy


def classify(method: str, target: str) -> str:
    """A Docker API request's kind, e.g. 'GET containers/{id}/json'."""
    parts = [p for p in target.split("?", 1)[0].split("/") if p]
    if parts and parts[0].startswith("v1."):
        parts = parts[1:]
    if len(parts) >= 2 and parts[0] in ("containers", "images", "volumes"):
        if parts[1] not in ("create", "json"):
            parts[1] = "{id}"
        if parts[0] == "images" and len(parts) > 3:
            parts = [parts[0], "{id}", parts[-1]]
    return f"{method} {'/'.join(parts)}"


async def run_proxy(listen: str, upstream: str, stats_path: Path) -> None:
    """Forward a unix socket to the Docker API socket, counting requests by kind.

    Requests are framed by their headers and Content-Length (the local provider sends no
    chunked bodies); responses are copied through untouched, streams and all."""
    counts: Counter[str] = Counter()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_unix_connection(upstream)
        except OSError:
            client_w.close()
            return

        async def requests() -> None:
            try:
                while True:
                    head = await client_r.readuntil(b"\r\n\r\n")
                    request_line, _, headers = head.partition(b"\r\n")
                    method, target, *_ = request_line.decode("latin-1").split(" ")
                    counts[classify(method, target)] += 1
                    length = 0
                    for header in headers.split(b"\r\n"):
                        name, _, value = header.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
                    up_w.write(head)
                    if length:
                        up_w.write(await client_r.readexactly(length))
                    await up_w.drain()
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError):
                pass
            finally:
                up_w.close()

        async def responses() -> None:
            try:
                while data := await up_r.read(65536):
                    client_w.write(data)
                    await client_w.drain()
            except OSError:
                pass
            finally:
                client_w.close()

        await asyncio.gather(requests(), responses(), return_exceptions=True)

    server = await asyncio.start_unix_server(handle, listen, limit=2**20)
    async with server:
        temporary = stats_path.with_suffix(".tmp")
        while True:
            temporary.write_text(json.dumps(dict(counts)))
            temporary.replace(stats_path)
            await asyncio.sleep(0.5)


# --------------------------------------------------------------------------- clients


def docker_client(host: str) -> httpx.AsyncClient:
    # The limits go on the transport: httpx ignores a client's `limits` when it is given a
    # transport (finding E1 in ENGINE_STREAMS_WEBHOOKS.md).
    transport = httpx.AsyncHTTPTransport(
        uds=host.removeprefix("unix://"), limits=httpx.Limits(max_connections=64)
    )
    return httpx.AsyncClient(
        transport=transport, base_url="http://docker" + DOCKER_API, timeout=httpx.Timeout(120.0)
    )


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) of each Server-Sent Event."""
    name, data = "message", []
    async for line in response.aiter_lines():
        line = line.rstrip("\r")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def job_spec(command: list[str], duration: int = 300) -> dict[str, Any]:
    return {
        "provider": "local",
        "image": IMAGE,
        "cpu": CPU_MILLICORES,
        "memory": MEMORY,
        "storage": "1Gi",
        "duration": duration,
        "command": command,
    }


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------- part 1


# The direct sides run the same container as the gateway: the same job spec file is placed
# at /cortex/spec/job.json before it starts (podman copies it in with a subprocess, ~25 ms).
# direct_poll_bare skips that copy: the runtime's floor, shown for reference.
SIDES = ("gateway", "direct_wait", "direct_poll", "direct_poll_bare")
# The target is judged against the faster like-for-like direct client.
JUDGED_AGAINST = "direct_poll"
RUN_DEADLINE = 30.0
# Podman reports an exited container as "stopped" until its cleanup has run; the local
# provider counts both as ended, and so does the polling direct client.
ENDED_STATES = ("exited", "stopped", "dead")


async def wait_removed(docker: httpx.AsyncClient, name: str, limit: float = 30.0) -> float:
    """Seconds until the container is gone (the engine removes it after recording the end):
    the next sample must not overlap that removal."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        response = await docker.get(f"/containers/{name}/json")
        if response.status_code == 404:
            break
        await asyncio.sleep(0.02)
    return time.perf_counter() - started


async def gateway_run(client: httpx.AsyncClient, docker: httpx.AsyncClient) -> dict[str, Any]:
    started = time.perf_counter()
    response = await client.post(f"{API}/jobs", json=job_spec(["true"]))
    response.raise_for_status()
    job_id = response.json()["data"]["id"]
    posted = time.perf_counter() - started
    seen: dict[str, float] = {}
    outcome = None
    # A job can stay pending for good (see the findings: a failed submit is retried
    # forever); such a run is recorded as a failure instead of hanging the benchmark.
    with contextlib.suppress(TimeoutError):
        async with (
            asyncio.timeout(RUN_DEADLINE),
            client.stream(
                "GET", f"{API}/jobs/{job_id}/events", params={"follow": "true"}
            ) as stream,
        ):
            async for name, data in sse_events(stream):
                if name == "end":
                    outcome = json.loads(data).get("status")
                    break
                event = json.loads(data)["type"]
                seen.setdefault(event, time.perf_counter() - started)
                if event in TERMINAL:
                    outcome = event
                    break
    total = time.perf_counter() - started
    job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
    stamps = {e["type"]: parse_time(e["timestamp"]) for e in job["events"]}
    created = stamps.get("created", math.nan)
    if outcome is None:
        outcome = f"no end after {RUN_DEADLINE:.0f} s (still {job['status']})"
        await client.post(f"{API}/jobs/{job_id}/cancel")
        removed = math.nan
    else:
        removed = await wait_removed(docker, f"cortex-{job_id}")
    return {
        "job": job_id,
        "ok": outcome == "completed",
        "status": outcome,
        "seconds": total,
        "post_seconds": posted,
        "client_seen": seen,
        # Server side, from the events' own timestamps (each transaction's start time).
        "server": {k: v - created for k, v in stamps.items()},
        "removed_after": removed,
    }


def direct_config(run_id: str) -> dict[str, Any]:
    return {
        "Image": IMAGE,
        "Entrypoint": ["true"],
        "Cmd": [],
        "Labels": {DIRECT_LABEL: run_id},
        "HostConfig": {
            "NanoCpus": CPU_MILLICORES * 1_000_000,
            "Memory": MEMORY_BYTES,
            "MemorySwap": MEMORY_BYTES,
        },
    }


async def direct_run(
    docker: httpx.AsyncClient, run_id: str, index: int, *, poll: bool, spec_file: bool = True
) -> dict[str, Any]:
    """create, place the spec file, start, learn that it exited, remove. `poll=False` learns
    it the way Docker clients do (POST /wait); `poll=True` inspects every 5 ms, because
    podman's /wait answers ~0.3 s late for a container that has just exited."""
    kind = ("poll" if poll else "wait") + ("" if spec_file else "-bare")
    name = f"bench-{run_id}-{index}-{kind}"
    started = time.perf_counter()
    created = await docker.post(
        "/containers/create", params={"name": name}, json=direct_config(run_id)
    )
    created.raise_for_status()
    container = created.json()["Id"]
    if spec_file:
        placed = await docker.put(
            f"/containers/{container}/archive",
            params={"path": "/"},
            content=spec_archive(job_spec(["true"])),
            headers={"Content-Type": "application/x-tar"},
        )
        placed.raise_for_status()
    t_created = time.perf_counter() - started
    (await docker.post(f"/containers/{container}/start")).raise_for_status()
    t_started = time.perf_counter() - started
    exit_code = None
    if poll:
        while time.perf_counter() - started < 60:
            state = (await docker.get(f"/containers/{container}/json")).json()["State"]
            if str(state.get("Status")).lower() in ENDED_STATES:
                exit_code = state.get("ExitCode")
                break
            await asyncio.sleep(0.005)
    else:
        waited = await docker.post(
            f"/containers/{container}/wait", params={"condition": "not-running"}
        )
        waited.raise_for_status()
        exit_code = waited.json().get("StatusCode")
    t_exited = time.perf_counter() - started
    await docker.delete(f"/containers/{container}", params={"force": "true"})
    t_removed = time.perf_counter() - started
    return {
        "ok": exit_code == 0,
        "exit_code": exit_code,
        "seconds": t_exited,
        "created": t_created,
        "started": t_started,
        "removed": t_removed,
    }


async def latency_part(
    gateway_url: str, key: str, docker_url: str, runs: int, warmup: int, run_id: str
) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=120) as client,
        docker_client(docker_url) as docker,
    ):
        for index in range(warmup + runs):
            # Interleaved, rotating which goes first, so that drift in the machine's load
            # (other processes share these cores) falls on every side alike.
            shift = index % len(SIDES)
            taken = {}
            for side in SIDES[shift:] + SIDES[:shift]:
                if side == "gateway":
                    taken[side] = await gateway_run(client, docker)
                else:
                    taken[side] = await direct_run(
                        docker,
                        run_id,
                        index,
                        poll=side != "direct_wait",
                        spec_file=side != "direct_poll_bare",
                    )
                if index >= warmup:
                    samples[side].append(taken[side])
            print(
                f"  run {index + 1}/{warmup + runs}: "
                + ", ".join(f"{side} {1000 * taken[side]['seconds']:.0f} ms" for side in SIDES)
                + (" (warmup)" if index < warmup else ""),
                flush=True,
            )
    ok = {side: [r for r in samples[side] if r["ok"]] for side in SIDES}
    failed = [r for r in samples["gateway"] if not r["ok"]]
    gateway = summary_ms([r["seconds"] for r in ok["gateway"]])
    directs = {side: summary_ms([r["seconds"] for r in ok[side]]) for side in SIDES[1:]}
    ratios = {
        side: {q: gateway[q] / directs[side][q] for q in ("p50", "p95", "p99")}
        for side in SIDES[1:]
        if gateway["count"] and directs[side]["count"]
    }
    phases = {}
    # Events carry whole-second times, so the phases are when the follower saw each event.
    for phase in ("created", "scheduled", "started", "completed"):
        phases[f"client: POST -> `{phase}` on SSE"] = summary_ms(
            [r["client_seen"][phase] for r in ok["gateway"] if phase in r["client_seen"]]
        )
    phases["client: POST /jobs answered"] = summary_ms([r["post_seconds"] for r in ok["gateway"]])
    for side in SIDES[1:]:
        phases[f"{side}: create (+ spec file)"] = summary_ms([r["created"] for r in ok[side]])
        phases[f"{side}: create+start"] = summary_ms([r["started"] for r in ok[side]])
        phases[f"{side}: create..removed"] = summary_ms([r["removed"] for r in ok[side]])
    strict = ratios.get(JUDGED_AGAINST, {})
    return {
        "runs": runs,
        "warmup": warmup,
        "failures": {side: len(samples[side]) - len(ok[side]) for side in SIDES},
        "gateway_failures": [{"job": r["job"], "status": r["status"]} for r in failed],
        "gateway_submit_to_completed": gateway,
        "direct_create_to_exited": directs,
        "ratio": ratios,
        "target_ratio": LATENCY_TARGET_RATIO,
        "judged_against": JUDGED_AGAINST,
        "target_met_at_p50": bool(strict) and strict["p50"] <= LATENCY_TARGET_RATIO,
        "phases": phases,
        "samples": samples,
    }


def print_latency(part: dict[str, Any], settings: dict[str, Any]) -> None:
    print(
        f"\nPart 1: submit-to-completed of `true` (N={part['runs']} each, interleaved, "
        f"engine_poll_interval={settings['engine_poll_interval']} s)"
    )
    rows = []
    sides = {"gateway: POST -> `completed` on SSE": part["gateway_submit_to_completed"]}
    directs = part["direct_create_to_exited"]
    sides["direct_wait: create, spec file, /wait returned"] = directs["direct_wait"]
    sides["direct_poll: create, spec file, inspect says ended"] = directs["direct_poll"]
    sides["direct_poll_bare: the same without the spec file"] = directs["direct_poll_bare"]
    for label, s in [*sides.items(), *part["phases"].items()]:
        indent = "" if label in sides else "  "
        rows.append(
            [indent + label, str(s["count"]), *(fmt(s.get(q)) for q in ("p50", "p95", "p99"))]
        )
    print(table(["ms", "n", "p50", "p95", "p99"], rows))
    for side, ratio in part["ratio"].items():
        print(
            f"ratio gateway/{side}: p50 {fmt(ratio['p50'], 2)}x, p95 {fmt(ratio['p95'], 2)}x, "
            f"p99 {fmt(ratio['p99'], 2)}x"
        )
    for failure in part["gateway_failures"]:
        print(f"gateway run failed: {failure['job']}: {failure['status']}")
    load = part.get("usage", {})
    print(
        f"machine during part 1: {fmt(load.get('machine_busy_cores'), 2)} of "
        f"{os.cpu_count()} cores busy, {fmt(load.get('other_cores'), 2)} by other processes"
    )
    print(
        f"target: gateway <= {LATENCY_TARGET_RATIO}x direct at p50, against {JUDGED_AGAINST} "
        f"(the same container, the faster client): "
        f"{'met' if part['target_met_at_p50'] else 'NOT met'}"
    )


# --------------------------------------------------------------------------- part 2


def boot_clock() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def boot_to_wall() -> float:
    """Offset from the boot clock (what containers read in /proc/uptime) to wall time."""
    offsets = []
    for _ in range(5):
        offsets.append(time.time() - boot_clock())
    return sorted(offsets)[2]


def sleeper_script(exit_at_boot: float) -> str:
    """Sleep until the host's boot clock reaches `exit_at_boot`, then print when it ended.

    busybox's date has no sub-second format, but /proc/uptime (the boot clock, in 10 ms
    steps) is the same clock inside a container as outside."""
    return (
        "echo start; read up idle < /proc/uptime; "
        f's=$(awk -v t={exit_at_boot:.2f} -v u=$up "BEGIN{{d=t-u; if (d<0) d=0; '
        'printf \\"%.2f\\", d}"); '
        "sleep $s; read up idle < /proc/uptime; echo end $up"
    )


async def job_states(db: AsyncEngine, ids: Sequence[str]) -> Counter[str]:
    async with db.connect() as connection:
        result = await connection.execute(
            sa.text("SELECT status, count(*) FROM jobs WHERE id = ANY(:ids) GROUP BY status"),
            {"ids": list(ids)},
        )
        return Counter({row[0]: int(row[1]) for row in result})


async def managed_containers(docker: httpx.AsyncClient, job_ids: set[str]) -> list[str]:
    """Containers the gateway made for these jobs (and only these)."""
    response = await docker.get(
        "/containers/json",
        params={"all": "true", "filters": json.dumps({"label": ["cortex.managed=true"]})},
    )
    response.raise_for_status()
    return [
        c["Id"] for c in response.json() if (c.get("Labels") or {}).get("cortex.job") in job_ids
    ]


async def remove_containers(docker: httpx.AsyncClient, ids: Sequence[str]) -> None:
    gate = asyncio.Semaphore(8)

    async def remove(container: str) -> None:
        async with gate:
            with contextlib.suppress(httpx.HTTPError):
                await docker.delete(f"/containers/{container}", params={"force": "true", "t": "0"})

    await asyncio.gather(*(remove(c) for c in ids))


async def sample_until(probe: Probe, until: float, step: float = 1.0) -> list[Snapshot]:
    """Snapshots every `step` seconds until the boot clock reaches `until`."""
    snapshots = [probe.snapshot()]
    while boot_clock() + step <= until:
        await asyncio.sleep(step)
        snapshots.append(probe.snapshot())
    return snapshots


async def concurrency_level(
    client: httpx.AsyncClient,
    docker: httpx.AsyncClient,
    db: AsyncEngine,
    probe: Probe,
    count: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    offset = boot_to_wall()
    ramp = args.ramp_seconds if args.ramp_seconds else 20 + 0.5 * count
    first_exit_boot = boot_clock() + ramp + args.hold
    spread = args.exit_spread
    exits = [first_exit_boot + spread * i / max(count - 1, 1) for i in range(count)]
    duration = int(ramp + args.hold + spread + 600)
    print(
        f"\n  M={count}: submitting; containers exit {ramp + args.hold:.0f}-"
        f"{ramp + args.hold + spread:.0f} s from now",
        flush=True,
    )

    before_submit = probe.snapshot()
    started = time.monotonic()
    gate = asyncio.Semaphore(16)
    submit_errors: list[str] = []

    async def submit(exit_at: float) -> tuple[str, float] | None:
        async with gate:
            spec = job_spec(["sh", "-c", sleeper_script(exit_at)], duration)
            response = await client.post(f"{API}/jobs", json=spec)
            if response.status_code != 201:
                submit_errors.append(f"{response.status_code} {response.text[:200]}")
                return None
            return response.json()["data"]["id"], exit_at

    # The boot-clock moment each job's container was told to exit, by job id.
    exit_of = dict(j for j in await asyncio.gather(*(submit(e) for e in exits)) if j)
    submitted = list(exit_of)
    submit_seconds = time.monotonic() - started

    # Ramp: until every job runs (or one ended early), leaving at least part of the hold
    # for the steady-state sample even when some job never starts.
    states: Counter[str] = Counter()
    all_running_after = None
    while boot_clock() < first_exit_boot - min(args.hold, 10.0):
        states = await job_states(db, submitted)
        if states["running"] == len(submitted):
            all_running_after = time.monotonic() - started
            break
        if sum(states[s] for s in TERMINAL):
            break
        await asyncio.sleep(0.25)
    ramp_usage = usage(before_submit, probe.snapshot())
    print(
        f"  M={count}: submitted in {submit_seconds:.1f} s; all running after "
        f"{fmt(all_running_after)} s; states {dict(states)}",
        flush=True,
    )

    # Steady state: every job running (if all started), nothing exiting yet.
    states_at_steady = dict(states)
    steady = await sample_until(probe, first_exit_boot - 1.5)
    pools_steady = await http_pools(str(client.base_url))
    steady_usage = usage(steady[0], steady[-1]) if len(steady) > 1 else None
    peak_rss = max(s.gateway_rss for s in steady) / 2**20

    # Exits, spread over `spread` seconds, then the stragglers.
    before_exits = probe.snapshot()
    finished_after = None
    while boot_clock() < exits[-1] + args.settle_seconds:
        states = await job_states(db, submitted)
        # Done when nothing that started is still unfinished (a job stuck pending never
        # started a container that could exit).
        if states["running"] + states["scheduled"] + states["cancelling"] == 0:
            finished_after = time.monotonic() - started
            break
        await asyncio.sleep(0.25)
    exit_usage = usage(before_exits, probe.snapshot())
    pools_after_exits = await http_pools(str(client.base_url))

    # Exit moments (the containers' own last line) and completion records.
    async with db.connect() as connection:
        rows = (
            (
                await connection.execute(
                    sa.text(
                        "SELECT j.id, j.status, j.ended_at, "
                        "(SELECT line FROM log_lines l WHERE l.job_id = j.id "
                        " AND l.line LIKE 'end %' ORDER BY seq DESC LIMIT 1) AS end_line, "
                        "(SELECT e.timestamp FROM job_events e WHERE e.job_id = j.id "
                        " AND e.type = 'started') AS started_at, j.created_at "
                        "FROM jobs j WHERE j.id = ANY(:ids)"
                    ),
                    {"ids": submitted},
                )
            )
            .mappings()
            .all()
        )
    delays, early, to_running = [], 0, []
    for row in rows:
        if row["started_at"] is not None:
            to_running.append((row["started_at"] - row["created_at"]).total_seconds())
        if row["status"] != "completed" or row["ended_at"] is None or not row["end_line"]:
            continue
        # /proc/uptime truncates to 10 ms: the exit was within [value, value + 10 ms).
        exited_wall = float(row["end_line"].split()[1]) + 0.005 + offset
        if exited_wall < exit_of[row["id"]] + offset - 0.5:
            early += 1
        delays.append(row["ended_at"].timestamp() - exited_wall)

    # Release: the engine removes each finished job's container.
    release_started = time.monotonic()
    ended = {row["id"] for row in rows if row["status"] in TERMINAL}
    left: list[str] = []
    while time.monotonic() - release_started < args.settle_seconds:
        left = await managed_containers(docker, ended)
        if not left:
            break
        await asyncio.sleep(0.5)
    released_after = time.monotonic() - release_started if not left else None

    statuses = Counter(row["status"] for row in rows)
    return {
        "jobs": count,
        "submitted": len(submitted),
        "submit_errors": submit_errors[:5],
        "submit_seconds": submit_seconds,
        "submit_rate_per_s": len(submitted) / submit_seconds if submit_seconds else None,
        "all_running_after_s": all_running_after,
        "created_to_running": summary_ms(to_running),
        "ramp_usage": ramp_usage,
        "running_at_steady_start": states_at_steady.get("running", 0),
        "steady_usage": steady_usage,
        "steady_peak_rss_mib": peak_rss,
        "exit_spread_s": spread,
        "exit_to_recorded_completed": summary_ms(delays),
        "exited_early": early,
        "all_finished_after_s": finished_after,
        "exit_usage": exit_usage,
        "final_statuses": dict(statuses),
        "containers_released_after_s": released_after,
        "containers_left": len(left),
        "gateway_http_pools": {"steady": pools_steady, "after_exits": pools_after_exits},
    }


_END_LINE = re.compile(rb"end (\d+\.\d+)")


async def direct_burst(
    docker: httpx.AsyncClient, probe: Probe, count: int, args: argparse.Namespace, run_id: str
) -> dict[str, Any]:
    """The same M sleepers run directly, without the gateway, and their exits learnt the way
    the fastest Docker client learns them: from one /events stream. The delay from each exit
    to its `die` event is the runtime's own share of any lag in recording a burst of exits."""
    offset = boot_to_wall()
    ramp = args.ramp_seconds if args.ramp_seconds else 20 + 0.5 * count
    first_exit_boot = boot_clock() + ramp + args.hold
    spread = args.exit_spread
    exits = [first_exit_boot + spread * i / max(count - 1, 1) for i in range(count)]
    print(f"  M={count} direct: the same containers without the gateway", flush=True)
    died: dict[str, float] = {}
    # Only this level's containers count (the gateway's may still be dying and removed).
    expected: set[str] = set()
    listening, all_died = asyncio.Event(), asyncio.Event()

    async def watch() -> None:
        # Filtered here: podman's compatible API matches an "event" filter against its own
        # names ("died"), not Docker's ("die").
        filters = json.dumps({"type": ["container"]})
        async with docker.stream(
            "GET", "/events", params={"filters": filters}, timeout=httpx.Timeout(None)
        ) as response:
            listening.set()
            async for line in response.aiter_lines():
                with contextlib.suppress(ValueError, KeyError):
                    event = json.loads(line)
                    if event.get("Action") != "die":
                        continue
                    container = event.get("id") or event["Actor"]["ID"]
                    if container in expected:
                        died.setdefault(container, time.time())
                    if expected and len(died) >= len(expected):
                        all_died.set()

    watcher = asyncio.create_task(watch())
    await listening.wait()
    # As many creations at once as the local provider allows itself.
    gate = asyncio.Semaphore(4)

    async def run(index: int, exit_at: float) -> str | None:
        config = {
            **direct_config(run_id),
            "Entrypoint": ["sh", "-c", sleeper_script(exit_at)],
        }
        async with gate:
            created = await docker.post(
                "/containers/create", params={"name": f"bench-{run_id}-burst-{index}"}, json=config
            )
            if created.status_code not in (200, 201):
                return None
            container = str(created.json()["Id"])
            started = await docker.post(f"/containers/{container}/start")
            return container if started.status_code in (204, 304) else None

    try:
        ids = [c for c in await asyncio.gather(*(run(i, e) for i, e in enumerate(exits))) if c]
        expected.update(ids)
        await asyncio.sleep(max(0.0, first_exit_boot - 1.5 - boot_clock()))
        before_exits = probe.snapshot()
        all_died.clear()
        if len(died) < len(ids):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(exits[-1] + args.settle_seconds - boot_clock()):
                    await all_died.wait()
        exit_usage = usage(before_exits, probe.snapshot())
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    delays = []
    for container in ids:
        logs = await docker.get(f"/containers/{container}/logs", params={"stdout": "1"})
        found = _END_LINE.search(logs.content)
        if found is None or container not in died:
            continue
        exited_wall = float(found.group(1)) + 0.005 + offset
        delays.append(died[container] - exited_wall)
    await remove_containers(docker, ids)
    return {
        "started": len(ids),
        "exit_to_die_event": summary_ms(delays),
        "exit_usage": exit_usage,
    }


async def concurrency_part(
    gateway_url: str,
    key: str,
    docker_url: str,
    db: AsyncEngine,
    probe: Probe,
    args: argparse.Namespace,
    run_id: str,
) -> list[dict[str, Any]]:
    levels = []
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(
            base_url=gateway_url,
            headers=headers,
            timeout=120,
            limits=httpx.Limits(max_connections=32),
        ) as client,
        docker_client(docker_url) as docker,
    ):
        for count in args.concurrent:
            level = await concurrency_level(client, docker, db, probe, count, args)
            if args.direct_burst:
                level["direct"] = await direct_burst(docker, probe, count, args, run_id)
            levels.append(level)
            print_level(level)
    return levels


def print_level(level: dict[str, Any]) -> None:
    steady = level["steady_usage"] or {}
    cores = steady.get("cores", {})
    delay = level["exit_to_recorded_completed"]
    running = level["created_to_running"]
    print(
        f"  M={level['jobs']}: created->running p50 {fmt(running.get('p50'), 0)} ms "
        f"p99 {fmt(running.get('p99'), 0)} ms; "
        f"steady gateway {fmt(100 * cores.get('gateway', math.nan), 0)}% CPU, "
        f"RSS {fmt(level['steady_peak_rss_mib'])} MiB, podman "
        f"{fmt(100 * cores.get('podman', math.nan), 0)}%, postgres "
        f"{fmt(100 * cores.get('postgres', math.nan), 0)}%, docker req/s "
        f"{fmt(steady.get('docker_requests_per_s_total'))}; exit->completed p50 "
        f"{fmt(delay.get('p50'), 0)} ms p99 {fmt(delay.get('p99'), 0)} ms (n={delay['count']}); "
        f"statuses {level['final_statuses']}",
        flush=True,
    )
    direct = level.get("direct")
    if direct:
        seen = direct["exit_to_die_event"]
        print(
            f"  M={level['jobs']} direct (no gateway): exit->die event p50 "
            f"{fmt(seen.get('p50'), 0)} ms p99 {fmt(seen.get('p99'), 0)} ms "
            f"(n={seen['count']} of {direct['started']}); during the exits other cores "
            f"{fmt(direct['exit_usage'].get('other_cores'), 2)}",
            flush=True,
        )


def print_concurrency(levels: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    print(
        f"\nPart 2: concurrent running jobs followed by one gateway process "
        f"(engine_poll_interval={settings['engine_poll_interval']} s, "
        f"metrics_interval={settings['metrics_interval']} s)"
    )
    rows = []
    for level in levels:
        steady = level["steady_usage"] or {}
        cores = steady.get("cores", {})
        delay = level["exit_to_recorded_completed"]
        rows.append(
            [
                str(level["jobs"]),
                fmt(level["all_running_after_s"]),
                fmt(100 * cores.get("gateway", math.nan), 0),
                fmt(level["steady_peak_rss_mib"], 0),
                fmt(steady.get("docker_requests_per_s_total"), 0),
                fmt(100 * cores.get("podman", math.nan), 0),
                fmt(100 * cores.get("postgres", math.nan), 0),
                fmt(delay.get("p50"), 0),
                fmt(delay.get("p99"), 0),
                fmt(delay.get("max"), 0),
                "/".join(
                    fmt(level.get("direct", {}).get("exit_to_die_event", {}).get(q), 0)
                    for q in ("p50", "p99")
                ),
                f"{level['final_statuses'].get('completed', 0)}/{level['jobs']}",
                fmt(level["containers_released_after_s"]),
            ]
        )
    headers = [
        "M",
        "all running s",
        "gw CPU %",
        "gw RSS MiB",
        "docker req/s",
        "podman %",
        "pg %",
        "exit->done p50 ms",
        "p99 ms",
        "max ms",
        "direct exit->event p50/p99 ms",
        "completed",
        "released s",
    ]
    print(table(headers, rows))


# --------------------------------------------------------------------------- main


async def cleanup(docker_url: str, db: AsyncEngine | None, run_id: str) -> int:
    """Remove every container this run made: the direct ones (by label) and the gateway's
    for this run's jobs (looked up in this run's database)."""
    removed = 0
    async with docker_client(docker_url) as docker:
        response = await docker.get(
            "/containers/json",
            params={"all": "true", "filters": json.dumps({"label": [f"{DIRECT_LABEL}={run_id}"]})},
        )
        ids = [c["Id"] for c in response.json()] if response.status_code == 200 else []
        if db is not None:
            async with db.connect() as connection:
                job_ids = set((await connection.execute(sa.text("SELECT id FROM jobs"))).scalars())
            ids += await managed_containers(docker, job_ids)
        await remove_containers(docker, ids)
        removed = len(ids)
    return removed


async def bench(args: argparse.Namespace, database_url: str, db_dir: Database) -> dict[str, Any]:
    run_id = secrets.token_hex(4)
    runtime = ContainerRuntime(db_dir.directory, args.docker_host)
    docker_url = await runtime.start()
    podman_pid = runtime.pid
    db = database.create_engine(database_url, pool_size=2)
    key = await create_admin_key(db)
    settings = {
        "engine_enabled": True,
        "engine_poll_interval": args.poll_interval,
        "engine_lease_seconds": 30.0,
        "metrics_interval": args.metrics_interval,
        "database_pool_size": args.pool_size,
        "webhooks_enabled": False,
    }
    document: dict[str, Any] = {"settings": settings, "run_id": run_id, "docker": docker_url}
    try:
        if not args.skip_latency:
            gateway = Gateway(
                database_url, settings, docker_url, log_file("engine_latency", "gateway-part1")
            )
            await gateway.start()
            probe = Probe(gateway.pid, db_dir.postmaster_pid, podman_pid)
            try:
                print(f"Part 1: {args.runs} + {args.warmup} warmup runs each", flush=True)
                before = probe.snapshot()
                part = await latency_part(
                    gateway.url, key, docker_url, args.runs, args.warmup, run_id
                )
                part["usage"] = usage(before, probe.snapshot())
            finally:
                await gateway.stop()
            part["gateway_log"] = gateway.log_problems()
            document["latency"] = part
            print_latency(part, settings)
        if args.concurrent:
            # A second gateway, whose Docker socket is the counting proxy's.
            proxy_socket = db_dir.directory / "docker-proxy.sock"
            stats = db_dir.directory / "docker-proxy.json"
            proxy = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "_proxy",
                str(proxy_socket),
                docker_url.removeprefix("unix://"),
                str(stats),
            )
            for _ in range(100):
                if proxy_socket.exists():
                    break
                await asyncio.sleep(0.05)
            gateway = Gateway(
                database_url,
                settings,
                f"unix://{proxy_socket}",
                log_file("engine_latency", "gateway-part2"),
            )
            await gateway.start()
            probe = Probe(
                gateway.pid, db_dir.postmaster_pid, podman_pid, {"proxy": proxy.pid}, stats
            )
            try:
                levels = await concurrency_part(
                    gateway.url, key, docker_url, db, probe, args, run_id
                )
            finally:
                await gateway.stop()
                proxy.terminate()
                await proxy.wait()
            document["concurrency"] = {
                "levels": levels,
                "gateway_log": gateway.log_problems(),
            }
            print_concurrency(levels, settings)
    finally:
        document["containers_removed_at_end"] = await cleanup(docker_url, db, run_id)
        await db.dispose()
        await runtime.stop()
    return document


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="latency samples per side")
    parser.add_argument("--warmup", type=int, default=2, help="unrecorded runs per side first")
    parser.add_argument("--skip-latency", action="store_true", help="only part 2")
    parser.add_argument(
        "--concurrent",
        type=lambda text: [int(part) for part in text.split(",") if part],
        default=[100],
        help="comma-separated numbers of concurrent jobs (e.g. 100,250,500); empty skips part 2",
    )
    parser.add_argument("--hold", type=float, default=15.0, help="seconds all jobs run together")
    parser.add_argument(
        "--ramp-seconds",
        type=float,
        default=0.0,
        help="time allowed for all to start (default: 20 s + 0.5 s per job)",
    )
    parser.add_argument("--exit-spread", type=float, default=10.0, help="exits spread over s")
    parser.add_argument("--settle-seconds", type=float, default=120.0)
    parser.add_argument(
        "--no-direct-burst",
        dest="direct_burst",
        action="store_false",
        help="skip the direct baseline of each level's exits (the same containers, no gateway)",
    )
    parser.add_argument("--poll-interval", type=float, default=0.05, help="engine_poll_interval")
    parser.add_argument("--metrics-interval", type=float, default=10.0, help="the default")
    parser.add_argument("--pool-size", type=int, default=10, help="database_pool_size")
    add_runtime_argument(parser)
    return parser.parse_args(argv)


def handle_signals() -> None:
    """Ctrl-C and SIGTERM both unwind the run through its `finally` blocks (stopping the
    gateway, the podman service and the database, removing containers), also when the
    script was started in the background, where a shell leaves SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--docker-host",
        help="an existing Docker Engine API (unix://...); default: a podman service of this "
        "run's own, started and stopped by the script",
    )


def prepare_runtime(args: argparse.Namespace) -> None:
    """Without --docker-host, make sure podman and busybox:latest are installed (the
    project's script does both once), for the run's own podman service."""
    if not args.docker_host:
        shared_runtime()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_proxy":
        listen, upstream, stats = sys.argv[2:5]
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_proxy(listen, upstream, Path(stats)))
        return
    args = parse_args(sys.argv[1:])
    handle_signals()
    prepare_runtime(args)
    started = datetime.now(UTC)
    # Taken before the gateway starts: the package may be edited while a run goes on.
    code = code_fingerprint()
    store = Database()
    try:
        url = store.start()
        document = asyncio.run(bench(args, url, store))
    finally:
        store.close()
    document = {
        "benchmark": "engine_latency",
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "code": code,
        "code_changed_during_run": code_fingerprint() != code,
        "machine": machine(),
        **document,
    }
    path = write_results("engine_latency", document)
    print(f"\nresults: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
