"""Benchmark of log intake: how fast the gateway stores what a job prints (issue 20).

    .venv/bin/python bench/log_intake.py                       # both parts, the defaults
    .venv/bin/python bench/log_intake.py --big-runs 3 --chatty-jobs 8 --chatty-lines 100000
    .venv/bin/python bench/log_intake.py --skip-chatty          # part 1 only

Part 1, the big job: a local job printing 8 MB (160,000 lines of 50 bytes,
`yes <49 characters> | head -c 8000000`) submitted through the gateway (POST /jobs, its
events followed over SSE until `completed`), against the same container run directly on the
Docker Engine API in the same run, interleaved: create, start, then its whole log read with
one following request until the runtime ends it (what the runtime takes to serve the log as
the container prints it), and once more, unfollowed, after it stopped (serving a finished
log). Checked: the gateway stored every line printed, each once, in order (count, first and
last sequence, distinct texts). Judged: the job's `startedAt` -> `completed` recorded
(server side, the events' own times) within 2x the runtime's start -> whole log served.

Part 2, raw intake: K chatty jobs at once (default 8, each printing L lines of 50 bytes as
fast as it can); the lines stored per second by the one gateway process across them, from
the moment the first line of the run is stored to the moment the last one is (sampled from
the jobs' stored-line counters every 100 ms). Target: >= 50,000 lines/s.

Everything runs on this machine and is started and stopped by the script with
bench/engine_latency.py's harness: an embedded PostgreSQL in a temporary directory, a podman
API service of the run's own (or --docker-host), the gateway under uvicorn in a child
process with the shipped settings (webhooks off). Results: bench/results/log_intake-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import struct
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database

from engine_latency import (
    API,
    DIRECT_LABEL,
    IMAGE,
    ROOT,
    TERMINAL,
    ContainerRuntime,
    Database,
    Gateway,
    Probe,
    add_runtime_argument,
    cleanup,
    code_fingerprint,
    create_admin_key,
    docker_client,
    fmt,
    handle_signals,
    log_file,
    machine,
    parse_time,
    prepare_runtime,
    serve,
    sse_events,
    table,
    usage,
    write_results,
)

LINE = "0123456789012345678901234567890123456789012345678"  # 49 characters + newline = 50 bytes
BIG_BYTES = 8_000_000
TARGET_RATIO = 2.0
TARGET_LINES_PER_S = 50_000


def big_command(size: int) -> list[str]:
    return ["sh", "-c", f"yes {LINE} | head -c {size}"]


def chatty_command(lines: int) -> list[str]:
    return ["sh", "-c", f"yes {LINE} | head -n {lines}"]


def job_spec(command: list[str]) -> dict[str, Any]:
    return {
        "provider": "local",
        "image": IMAGE,
        "cpu": 1000,
        "memory": "64Mi",
        "storage": "1Gi",
        "duration": 600,
        "command": command,
    }


def count_frames(raw: bytes) -> tuple[int, int]:
    """(lines, payload bytes) of a Docker multiplexed log stream."""
    lines = size = 0
    at = 0
    while at + 8 <= len(raw):
        (length,) = struct.unpack(">I", raw[at + 4 : at + 8])
        payload = raw[at + 8 : at + 8 + length]
        lines += payload.count(b"\n")
        size += length
        at += 8 + length
    return lines, size


# --------------------------------------------------------------------------- part 1


async def runtime_run(docker: httpx.AsyncClient, run_id: str, index: int, size: int) -> dict:
    """The same container on the runtime, read as the gateway must read it: started, its log
    followed with one request until the runtime ends that stream (podman ends it when the
    container stops, even while its reader is far behind), then the stopped container's log
    read unfollowed to its end for the rest. `delivered_seconds`: start -> every line
    delivered once. Then the stopped container's whole log is read once more, alone
    (`reread_seconds`: what serving the finished log takes)."""
    name = f"bench-{run_id}-log-{index}"
    command = big_command(size)
    config = {
        "Image": IMAGE,
        "Entrypoint": command[:1],
        "Cmd": command[1:],
        "Labels": {DIRECT_LABEL: run_id},
        "HostConfig": {"NanoCpus": 1_000_000_000, "Memory": 64 * 2**20},
    }
    created = await docker.post("/containers/create", params={"name": name}, json=config)
    created.raise_for_status()
    container = created.json()["Id"]
    params = {"follow": 1, "stdout": 1, "stderr": 1, "timestamps": 1}
    started = time.perf_counter()
    (await docker.post(f"/containers/{container}/start")).raise_for_status()
    chunks = []
    async with docker.stream("GET", f"/containers/{container}/logs", params=params) as response:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
    followed = time.perf_counter() - started
    followed_lines, _ = count_frames(b"".join(chunks))
    await docker.post(f"/containers/{container}/wait", params={"condition": "not-running"})
    response = await docker.get(f"/containers/{container}/logs", params={**params, "follow": 0})
    delivered = time.perf_counter() - started
    total_lines, payload = count_frames(response.content)
    began = time.perf_counter()
    again = await docker.get(f"/containers/{container}/logs", params={**params, "follow": 0})
    reread = time.perf_counter() - began
    reread_lines, _ = count_frames(again.content)
    await docker.delete(f"/containers/{container}", params={"force": "true"})
    return {
        "followed_seconds": followed,
        "followed_lines": followed_lines,
        "delivered_seconds": delivered,
        "lines": total_lines,
        "payload_bytes": payload,
        "reread_seconds": reread,
        "reread_lines": reread_lines,
    }


async def stored_lines(db: AsyncEngine, job_id: str) -> dict[str, Any]:
    async with db.connect() as connection:
        row = (
            await connection.execute(
                sa.text(
                    "SELECT count(*) AS lines, count(DISTINCT seq) AS distinct_seqs, "
                    "min(seq) AS first, max(seq) AS last, "
                    "coalesce(sum(octet_length(line)), 0) AS bytes, "
                    "count(*) FILTER (WHERE line <> :line) AS other_texts "
                    "FROM log_lines WHERE job_id = :job"
                ),
                {"job": job_id, "line": LINE},
            )
        ).one()
    return dict(row._mapping)


async def gateway_run(client: httpx.AsyncClient, db: AsyncEngine, command: list[str]) -> dict:
    posted = time.perf_counter()
    response = await client.post(f"{API}/jobs", json=job_spec(command))
    response.raise_for_status()
    job_id = response.json()["data"]["id"]
    answered = time.perf_counter() - posted
    outcome = None
    async with client.stream("GET", f"{API}/jobs/{job_id}/events", params={"follow": "true"}) as s:
        async for name, data in sse_events(s):
            if name == "end":
                outcome = json.loads(data).get("status")
                break
            if json.loads(data)["type"] in TERMINAL:
                outcome = json.loads(data)["type"]
                break
    seen = time.perf_counter() - posted
    seen_wall = time.time()
    job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
    stamps = {e["type"]: parse_time(e["timestamp"]) for e in job["events"]}
    started = parse_time(job["startedAt"]) if job.get("startedAt") else float("nan")
    ended = stamps.get(outcome or "", float("nan"))
    return {
        "job": job_id,
        "status": outcome,
        "post_seconds": answered,
        "submit_to_seen_seconds": seen,
        # The events' times are their transactions' start times; a long final transaction
        # (every line stored at the end) would hide in them: also taken from the client's
        # clock when it saw the end (same machine, so the same clock).
        "started_to_recorded_seconds": ended - started,
        "started_to_seen_seconds": seen_wall - started,
        "created_to_recorded_seconds": ended - stamps.get("created", float("nan")),
        "stored": await stored_lines(db, job_id),
    }


async def big_part(gateway: Gateway, key: str, docker_url: str, db: AsyncEngine, args) -> dict:
    run_id = secrets.token_hex(4)
    expected = args.big_bytes // (len(LINE) + 1)
    samples: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=600) as client,
        docker_client(docker_url) as docker,
    ):
        for index in range(args.big_runs):
            pair: dict[str, Any] = {}
            order = ("runtime", "gateway") if index % 2 == 0 else ("gateway", "runtime")
            for side in order:
                if side == "runtime":
                    pair["runtime"] = await runtime_run(docker, run_id, index, args.big_bytes)
                else:
                    pair["gateway"] = await gateway_run(client, db, big_command(args.big_bytes))
            stored = pair["gateway"]["stored"]
            pair["complete"] = (
                pair["gateway"]["status"] == "completed"
                and stored["lines"] == expected
                and stored["distinct_seqs"] == expected
                and stored["first"] == 1
                and stored["last"] == expected
                and stored["other_texts"] == 0
                and pair["runtime"]["lines"] == expected
            )
            pair["ratio"] = (
                pair["gateway"]["started_to_seen_seconds"] / pair["runtime"]["delivered_seconds"]
            )
            samples.append(pair)
            print(
                f"  run {index + 1}/{args.big_runs}: gateway started->completed seen "
                f"{pair['gateway']['started_to_seen_seconds']:.2f} s "
                f"({stored['lines']} lines stored of {expected}), runtime start->all lines "
                f"{pair['runtime']['delivered_seconds']:.2f} s, re-read "
                f"{pair['runtime']['reread_seconds']:.2f} s, ratio {pair['ratio']:.2f}x",
                flush=True,
            )
    return {"expected_lines": expected, "samples": samples}


# --------------------------------------------------------------------------- part 2


async def chatty_part(gateway: Gateway, key: str, db: AsyncEngine, args, probe: Probe) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    total = args.chatty_jobs * args.chatty_lines
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=600) as client:
        ids = []
        for _ in range(args.chatty_jobs):
            response = await client.post(
                f"{API}/jobs", json=job_spec(chatty_command(args.chatty_lines))
            )
            response.raise_for_status()
            ids.append(response.json()["data"]["id"])
        first_at: float | None = None
        before = probe.snapshot()
        stored, curve = 0, []
        deadline = time.monotonic() + args.chatty_timeout  # curve times: wall clock
        async with db.connect() as connection:
            while time.monotonic() < deadline:
                stored = int(
                    await connection.scalar(
                        sa.text("SELECT coalesce(sum(log_seq), 0) FROM jobs WHERE id = ANY(:ids)"),
                        {"ids": ids},
                    )
                )
                await connection.commit()
                now = time.time()
                curve.append((now, stored))
                if stored and first_at is None:
                    first_at = now
                if stored >= total:
                    break
                await asyncio.sleep(0.1)
        last_at = curve[-1][0]
        used = usage(before, probe.snapshot())
        statuses = []
        for job_id in ids:
            for _ in range(600):
                job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
                if job["status"] in TERMINAL:
                    break
                await asyncio.sleep(0.1)
            statuses.append(job["status"])
    checks = [await stored_lines(db, job_id) for job_id in ids]
    async with db.connect() as connection:
        first_start = await connection.scalar(
            sa.text("SELECT min(started_at) FROM jobs WHERE id = ANY(:ids)"), {"ids": ids}
        )
    # From the first job's start (its container printing) to the last line stored.
    span = last_at - first_start.timestamp()

    # The steady rate: from 10 % to 90 % of the lines (start-up and the last job's tail
    # left out), beside the whole span.
    def at(fraction: float) -> float:
        return next(t for t, n in curve if n >= fraction * total)

    steady = (
        0.8 * total / (at(0.9) - at(0.1)) if stored >= total and at(0.9) > at(0.1) else float("nan")
    )
    return {
        "jobs": args.chatty_jobs,
        "lines_per_job": args.chatty_lines,
        "lines_expected": total,
        "lines_stored": stored,
        "span_seconds": span,
        "first_commit_to_last_seconds": (last_at - first_at) if first_at else None,
        "lines_per_second": stored / span if span and span > 0 else float("nan"),
        "lines_per_second_10_90": steady,
        "all_complete": all(
            c["lines"] == args.chatty_lines and c["distinct_seqs"] == args.chatty_lines
            for c in checks
        ),
        "statuses": statuses,
        "usage": used,
        # What the machine's load cannot change: CPU seconds per stored line, and the lines
        # one core of the gateway would store at that cost.
        "gateway_cpu_us_per_line": 1e6 * used["cores"]["gateway"] * used["seconds"] / total,
        "postgres_cpu_us_per_line": 1e6
        * used["cores"].get("postgres", 0)
        * used["seconds"]
        / total,
        "lines_per_gateway_cpu_second": total / (used["cores"]["gateway"] * used["seconds"]),
    }


# --------------------------------------------------------------------------- report


def print_big(part: dict[str, Any]) -> None:
    samples = part["samples"]
    rows = []
    for i, s in enumerate(samples, start=1):
        g, r = s["gateway"], s["runtime"]
        rows.append(
            [
                str(i),
                fmt(g["started_to_seen_seconds"], 2),
                fmt(g["started_to_recorded_seconds"], 2),
                fmt(g["submit_to_seen_seconds"], 2),
                f"{g['stored']['lines']:,}",
                fmt(r["delivered_seconds"], 2),
                fmt(r["reread_seconds"], 2),
                fmt(s["ratio"], 2) + "x",
                "yes" if s["complete"] else "NO",
            ]
        )
    print(f"\nPart 1: the 8 MB job ({part['expected_lines']:,} lines), gateway vs runtime")
    print(
        table(
            [
                "run",
                "gateway started->completed seen s",
                "(by event time) s",
                "POST->seen s",
                "lines stored",
                "runtime start->all lines s",
                "runtime re-read s",
                "ratio",
                "all lines once",
            ],
            rows,
        )
    )
    ratios = sorted(s["ratio"] for s in samples)
    median = ratios[len(ratios) // 2]
    print(f"median ratio {median:.2f}x (target <= {TARGET_RATIO}x): ", end="")
    print("met" if median <= TARGET_RATIO and all(s["complete"] for s in samples) else "NOT met")


def print_chatty(part: dict[str, Any]) -> None:
    used = part["usage"]
    print(
        f"\nPart 2: {part['jobs']} chatty jobs x {part['lines_per_job']:,} lines: "
        f"{part['lines_stored']:,} of {part['lines_expected']:,} stored in "
        f"{fmt(part['span_seconds'], 2)} s = {part['lines_per_second']:,.0f} lines/s "
        f"(10-90 %: {part['lines_per_second_10_90']:,.0f} lines/s); every line once: "
        f"{'yes' if part['all_complete'] else 'NO'}; statuses {sorted(set(part['statuses']))}"
    )
    cores = ", ".join(f"{k} {v:.2f}" for k, v in used["cores"].items())
    print(f"  cores used: {cores}; other processes {used['other_cores']:.2f}")
    print(
        f"  gateway CPU per line {part['gateway_cpu_us_per_line']:.1f} us "
        f"({part['lines_per_gateway_cpu_second']:,.0f} lines per gateway CPU second), "
        f"PostgreSQL {part['postgres_cpu_us_per_line']:.1f} us"
    )
    print(
        f"target >= {TARGET_LINES_PER_S:,} lines/s: "
        f"{'met' if part['lines_per_second'] >= TARGET_LINES_PER_S else 'NOT met'}"
    )


# --------------------------------------------------------------------------- main


async def bench(args: argparse.Namespace, database_url: str, store: Database) -> dict[str, Any]:
    runtime = ContainerRuntime(store.directory, args.docker_host)
    docker_url = await runtime.start()
    db = database.create_engine(database_url, pool_size=2)
    key = await create_admin_key(db)
    settings = {"engine_enabled": True, "webhooks_enabled": False, **json.loads(args.settings)}
    document: dict[str, Any] = {"settings": settings, "docker": docker_url}
    gateway = Gateway(database_url, settings, docker_url, log_file("log_intake", "gateway"))
    await gateway.start()
    probe = Probe(gateway.pid, store.postmaster_pid, runtime.pid)
    try:
        if args.big_runs:
            before = probe.snapshot()
            document["big"] = await big_part(gateway, key, docker_url, db, args)
            document["big"]["usage"] = usage(before, probe.snapshot())
            print_big(document["big"])
        if not args.skip_chatty:
            document["chatty"] = await chatty_part(gateway, key, db, args, probe)
            print_chatty(document["chatty"])
    finally:
        await gateway.stop()
        document["gateway_log"] = gateway.log_problems()
        document["containers_removed_at_end"] = await cleanup(docker_url, db, "")
        await db.dispose()
        await runtime.stop()
    return document


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big-runs", type=int, default=3, help="8 MB jobs per side (0 skips)")
    parser.add_argument("--big-bytes", type=int, default=BIG_BYTES)
    parser.add_argument("--skip-chatty", action="store_true", help="only part 1")
    parser.add_argument("--chatty-jobs", type=int, default=8)
    parser.add_argument("--chatty-lines", type=int, default=100_000)
    parser.add_argument("--chatty-timeout", type=float, default=600.0)
    parser.add_argument("--settings", default="{}", help="more gateway settings, as JSON")
    add_runtime_argument(parser)
    return parser.parse_args(argv)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve(sys.argv[2:])
        return
    args = parse_args(sys.argv[1:])
    handle_signals()
    prepare_runtime(args)
    started = datetime.now(UTC)
    code = code_fingerprint()
    store = Database()
    try:
        url = store.start()
        document = asyncio.run(bench(args, url, store))
    finally:
        store.close()
    document = {
        "benchmark": "log_intake",
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "code": code,
        "machine": machine(),
        **document,
    }
    path = write_results("log_intake", document)
    print(f"\nresults: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
