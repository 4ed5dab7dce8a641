"""How many concurrent Akash jobs one gateway process drives, and what it asks of Console.

Starts, each in its own process: the fake Akash network (`python -m tests.fakes.akash`, with
realistic delays: bids after `--bid-delay` s, a service ready `--start-delay` s after its
lease), and one gateway (`cortex-gateway serve`) on an embedded PostgreSQL, configured for
that fake with the production poll interval (5 s). Then it submits N jobs at once (each
prints a line, sleeps `--job-seconds`, prints another and exits 0) and follows them through
the Jobs API until all have ended, for each N in `--jobs`.

Reported per N: jobs completed, time to submit them all, submit -> running and
submit -> completed (p50 / p95 / max), Console requests per job by route (counted by the
fake), Console requests per second overall, and the gateway's CPU seconds per job.

    /work/venv/bin/python bench/akash_jobs.py --jobs 100 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from app import database

from engine_latency import (
    API,
    ROOT,
    Database,
    code_fingerprint,
    cpu_seconds,
    create_admin_key,
    free_port,
    log_file,
    machine,
    percentile,
    table,
    write_results,
)

API_KEY = "ac.sk.bench." + "0" * 64
TERMINAL = ("completed", "failed", "cancelled")


async def _wait_http(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if process.returncode is not None:
                raise RuntimeError(f"{url} exited; see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code < 500:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer; see {log}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def start_fake(port: int, options: argparse.Namespace) -> asyncio.subprocess.Process:
    log = log_file("akash_jobs", "fake")
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fakes.akash",
            "--port",
            str(port),
            "--api-key",
            API_KEY,
            "--bid-delay",
            str(options.bid_delay),
            "--start-delay",
            str(options.start_delay),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    await _wait_http(f"http://127.0.0.1:{port}/_fake/state", process, log)
    return process


async def start_gateway(
    port: int, database_url: str, console_url: str, options: argparse.Namespace
) -> asyncio.subprocess.Process:
    log = log_file("akash_jobs", "gateway")
    env = {
        **os.environ,
        "CORTEX_DATABASE_URL": database_url,
        "CORTEX_AKASH_API_KEY": API_KEY,
        "CORTEX_AKASH_API_URL": console_url,
        "CORTEX_AKASH_POLL_INTERVAL": str(options.poll_interval),
        "CORTEX_ENGINE_MAX_JOBS": "5000",
        "CORTEX_LOG_LEVEL": "warning",
        "CORTEX_DATABASE_POOL_SIZE": str(options.pool_size),
    }
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    await _wait_http(f"http://127.0.0.1:{port}{API}/health", process, log)
    return process


async def run_batch(
    count: int, gateway: str, fake: str, key: str, pid: int, options: argparse.Namespace
) -> dict[str, Any]:
    spec = {
        "provider": "akash",
        "image": "busybox:1.36",
        "cpu": 100,
        "memory": "64Mi",
        "storage": "1Gi",
        "duration": 600,
        "command": ["sh", "-c", f"echo started; sleep {options.job_seconds}; echo done"],
    }
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=gateway, headers=headers, limits=limits) as client:
        before = (await client.get(f"{fake}/_fake/state")).json()["requests"]
        cpu_before = cpu_seconds(pid)
        started = time.monotonic()

        async def submit() -> tuple[str, float]:
            response = await client.post(f"{API}/jobs", json=spec, timeout=60)
            response.raise_for_status()
            return response.json()["data"]["id"], time.monotonic()

        submitted = dict(await asyncio.gather(*(submit() for _ in range(count))))
        submit_seconds = time.monotonic() - started
        running_at: dict[str, float] = {}
        ended_at: dict[str, float] = {}
        statuses: dict[str, str] = {}
        deadline = time.monotonic() + options.timeout
        while len(ended_at) < count and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 100}
                if cursor:
                    params["cursor"] = cursor
                try:
                    response = await client.get(f"{API}/jobs", params=params, timeout=60)
                    page = response.json()
                except (httpx.HTTPError, ValueError):
                    break  # the gateway is struggling: look again next round
                if "data" not in page:
                    break
                for job in page["data"]:
                    if job["id"] not in submitted:
                        continue
                    statuses[job["id"]] = job["status"]
                    if job["startedAt"] and job["id"] not in running_at:
                        running_at[job["id"]] = now
                    if job["status"] in TERMINAL and job["id"] not in ended_at:
                        ended_at[job["id"]] = now
                cursor = ((page.get("meta") or {}).get("pagination") or {}).get("nextCursor")
                if not cursor:
                    break
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
        after = (await client.get(f"{fake}/_fake/state")).json()
    requests = {
        route: after["requests"].get(route, 0) - before.get(route, 0) for route in after["requests"]
    }
    total = sum(requests.values())
    to_running = [running_at[j] - submitted[j] for j in running_at]
    to_end = [ended_at[j] - submitted[j] for j in ended_at]
    still_open = [
        d for d in after["deployments"] if d["jobId"] in submitted and d["state"] == "active"
    ]
    return {
        "jobs": count,
        "completed": sum(1 for s in statuses.values() if s == "completed"),
        "never_seen": count - len(statuses),
        "by_status": dict(Counter(statuses.values())),
        "deployments_left_open": len(still_open),
        "submit_seconds": round(submit_seconds, 2),
        "elapsed_seconds": round(elapsed, 1),
        "to_running_s": _spread(to_running),
        "to_completed_s": _spread(to_end),
        "console_requests_per_job": {r: round(n / count, 2) for r, n in sorted(requests.items())},
        "console_requests_per_job_total": round(total / count, 2),
        "console_requests_per_second": round(total / elapsed, 1),
        "gateway_cpu_seconds_per_job": round(cpu / count, 4),
    }


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "max": round(max(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--job-seconds", type=float, default=20.0)
    parser.add_argument("--bid-delay", type=float, default=3.0)
    parser.add_argument("--start-delay", type=float, default=2.0)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--pool-size", type=int, default=10, help="database_pool_size")
    options = parser.parse_args()

    db = Database()
    url = db.start()  # runs its own event loop, so before ours
    try:
        asyncio.run(run(options, url))
    finally:
        db.close()


async def run(options: argparse.Namespace, url: str) -> None:
    engine = database.create_engine(url, pool_size=1)
    key = await create_admin_key(engine)
    await engine.dispose()
    fake_port, gateway_port = free_port(), free_port()
    fake = await start_fake(fake_port, options)
    fake_url = f"http://127.0.0.1:{fake_port}"
    gateway = await start_gateway(gateway_port, url, fake_url, options)
    results = []
    try:
        for count in options.jobs:
            result = await run_batch(
                count, f"http://127.0.0.1:{gateway_port}", fake_url, key, gateway.pid, options
            )
            results.append(result)
            print(json.dumps(result, indent=2), flush=True)
    finally:
        await _stop(gateway)
        await _stop(fake)
    rows = [
        [
            str(r["jobs"]),
            str(r["completed"]),
            str(r["deployments_left_open"]),
            f"{r['submit_seconds']}",
            " / ".join(str(v) for v in r["to_running_s"].values()),
            " / ".join(str(v) for v in r["to_completed_s"].values()),
            f"{r['console_requests_per_job_total']}",
            f"{r['console_requests_per_second']}",
            f"{r['gateway_cpu_seconds_per_job']}",
        ]
        for r in results
    ]
    print(
        table(
            [
                "jobs",
                "completed",
                "left open",
                "submit s",
                "to running p50/p95/max s",
                "to completed p50/p95/max s",
                "Console req/job",
                "Console req/s",
                "gateway CPU s/job",
            ],
            rows,
        )
    )
    path = write_results(
        "akash_jobs",
        {
            "options": vars(options),
            "code": code_fingerprint(),
            "machine": machine(),
            "results": results,
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
