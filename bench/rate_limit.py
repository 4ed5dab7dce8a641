"""What the per-key rate limiter costs: POST /jobs and GET /jobs throughput of the gateway
with the limiter on (at a rate no run reaches) and off, in the same run, on one database.

    .venv/bin/python bench/rate_limit.py --jobs 20000 --duration 5 --rounds 2

Reuses jobs_api.py's machinery (embedded PostgreSQL, seeding, the load generator, the
server wrapper). Each round runs every scenario against both gateways, alternating which
goes first, so that drift on a shared machine falls on both. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app import database, embedded_postgres, migrate

import jobs_api
import seed

# Far above what one process can serve, so that the limiter counts every request and
# refuses none: what is measured is its bookkeeping, not its refusals.
UNREACHED_RATE = "1000000"
COST_TARGET = 0.05


def start_gateway(url: str, account_id: str, *, limited: bool) -> jobs_api.Server:
    port = jobs_api.free_port()
    command = [sys.executable, str(jobs_api.BENCH_DIR / "serve.py"), "gateway"]
    command += ["--port", str(port), "--database-url", url, "--account-id", account_id]
    env = {
        **os.environ,
        "CORTEX_DEFAULT_RATE_LIMIT": UNREACHED_RATE if limited else "0",
        "CORTEX_DEFAULT_RATE_BURST": UNREACHED_RATE if limited else "0",
    }
    label = "limiter_on" if limited else "limiter_off"
    return jobs_api.Server(label, port, subprocess.Popen(command, env=env))


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    engine = database.create_engine(url, pool_size=2)
    servers: list[jobs_api.Server] = []
    try:
        account_id, secret = await jobs_api.create_bench_key(engine)
        await seed.seed_jobs(engine, account_id, args.jobs, chunk_size=50_000)
        on = start_gateway(url, account_id, limited=True)
        off = start_gateway(url, account_id, limited=False)
        servers += [on, off]
        await asyncio.gather(jobs_api.wait_ready(on), jobs_api.wait_ready(off))
        targets = [
            jobs_api.Target("list_default", "gateway", "GET", f"{jobs_api.API}/jobs?limit=20", 200),
            jobs_api.post_targets()[0],
        ]
        rows: list[dict[str, Any]] = []
        for round_number in range(args.rounds):
            order = [on, off] if round_number % 2 == 0 else [off, on]
            for target in targets:
                for server in order:
                    report = await jobs_api.run_target(
                        target,
                        server,
                        secret=secret,
                        concurrency=args.concurrency,
                        warmup_s=args.warmup,
                        duration_s=args.duration,
                        postmaster_pid=None,
                    )
                    report["limiter"] = server.kind
                    report["round"] = round_number
                    rows.append(report)
        summary = summarize(rows)
        return {"command": " ".join(sys.argv), "config": vars(args), "results": rows, **summary}
    finally:
        for server in servers:
            jobs_api.stop_server(server)
        await engine.dispose()


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        by.setdefault((row["scenario"], row["limiter"]), []).append(row["client"]["throughput_rps"])
    verdict = {}
    print("\nscenario        limiter_off req/s  limiter_on req/s  cost")
    for scenario in sorted({s for s, _ in by}):
        off = sum(by[(scenario, "limiter_off")]) / len(by[(scenario, "limiter_off")])
        on = sum(by[(scenario, "limiter_on")]) / len(by[(scenario, "limiter_on")])
        cost = 1 - on / off
        verdict[scenario] = {"off_rps": off, "on_rps": on, "cost": cost, "met": cost <= COST_TARGET}
        print(f"{scenario:<15} {off:17.0f} {on:17.0f} {cost:6.1%}")
    return {"verdict": verdict}


def micro(calls: int = 200_000) -> dict[str, float]:
    """The limiter's own CPU per request, without the noise of a shared machine: one
    bucket's take() and the headers middleware around a do-nothing app, in microseconds."""
    import time

    from app.rate_limits.limiter import RateLimiter
    from app.rate_limits.requests import RateLimitHeadersMiddleware

    limiter = RateLimiter(None, 0.2)  # type: ignore[arg-type]
    keys = [f"key_{n}" for n in range(100)]
    start = time.perf_counter()
    for n in range(calls):
        limiter.take(keys[n % 100], 1e9, 10**9)
    take_us = (time.perf_counter() - start) / calls * 1e6

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["cortex.rate_limit"] = decision
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    decision = limiter.take("key_0", 1e9, 10**9)
    wrapped = RateLimitHeadersMiddleware(app)

    async def sent(message: Any) -> None:
        pass

    async def through(middleware: Any) -> float:
        begin = time.perf_counter()
        for _ in range(calls // 4):
            await middleware({"type": "http"}, None, sent)
        return (time.perf_counter() - begin) / (calls // 4) * 1e6

    bare_us = asyncio.run(through(app))
    headers_us = asyncio.run(through(wrapped)) - bare_us
    print(f"take(): {take_us:.2f} us; headers middleware: {headers_us:.2f} us per request")
    return {"take_us": take_us, "headers_middleware_us": headers_us}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--micro-only", action="store_true", help="only the in-process costs")
    args = parser.parse_args()
    costs = micro()
    if args.micro_only:
        return
    temp_dir = Path(tempfile.mkdtemp(prefix="cortex-bench-rate-"))
    try:
        server_url = embedded_postgres.start(temp_dir)
        name = f"cortex_bench_{secrets.token_hex(4)}"
        jobs_api._admin(server_url, f'CREATE DATABASE "{name}"')
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(url)
        results = {**asyncio.run(run(args, url)), "micro": costs}
        jobs_api.RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = jobs_api.RESULTS_DIR / f"rate_limit-{args.jobs}-{stamp}.json"
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results: {path}")
    finally:
        embedded_postgres.stop_all()
        shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
