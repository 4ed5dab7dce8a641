"""Benchmark of webhook deliveries from one gateway process (issue 5).

    /work/venv/bin/python bench/webhook_throughput.py                     # quick
    /work/venv/bin/python bench/webhook_throughput.py --backlog 20000 --endpoints 1,4,16 \\
        --rates 50,200,400 --duration 20

Two scenarios, against a receiver on 127.0.0.1 in its own process (a raw asyncio HTTP
server that answers 200 at once and records each request's arrival time, headers and body):

- live: jobs are created through POST /jobs at a fixed rate (engine off, so each job makes
  exactly one event, job.created) with one endpoint subscribed to "*". Measured: the delay
  from the job's createdAt (its transaction's start) to the delivery's arrival (p50/p99),
  and whether every delivery arrived.
- backlog: N deliveries are written to the outbox in one transaction (as the gateway's own
  enqueue does) over K endpoints; measured: how long until the receiver has them all (and
  until the gateway has recorded them all as succeeded): deliveries per second.

A sample of deliveries is verified with the `standardwebhooks` library. The shared harness
(embedded PostgreSQL, gateway child process, /proc sampling) is bench/engine_latency.py's.
Results go to bench/results/webhook_throughput-<time>.json; see
bench/ENGINE_STREAMS_WEBHOOKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app import database, ids
from app.webhooks import repository as webhooks_repository

from engine_latency import (
    API,
    ROOT,
    ContainerRuntime,
    Database,
    Gateway,
    Probe,
    add_runtime_argument,
    code_fingerprint,
    create_admin_key,
    fmt,
    free_port,
    handle_signals,
    job_spec,
    log_file,
    machine,
    parse_time,
    percentile,
    pg_transactions,
    prepare_runtime,
    summary_ms,
    table,
    usage,
    write_results,
)

THROUGHPUT_TARGET = 500.0
DELAY_TARGET_P99_MS = 500.0
VERIFY_SAMPLE = 200
THIS_SCRIPT = Path(__file__).resolve()


# --------------------------------------------------------------------------- receiver


class ReceiverProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, Content-Length bodies only (what the dispatcher sends)."""

    OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"

    def __init__(self, records: list[tuple[float, bytes, bytes]]) -> None:
        self.records = records
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.handle(time.time(), head, body)

    def handle(self, arrived: float, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        target = head.split(b" ", 2)[1]
        if target == b"/__stats":
            answer = json.dumps(
                {
                    "count": len(self.records),
                    "last": self.records[-1][0] if self.records else None,
                }
            ).encode()
        elif target == b"/__dump":
            # Every record as a JSON line; then they are forgotten.
            answer = b"".join(
                json.dumps(_record(*record)).encode() + b"\n" for record in self.records
            )
            self.records.clear()
        else:
            self.records.append((arrived, head, body))
            self.transport.write(self.OK)
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(answer), answer)
        )


def _record(arrived: float, head: bytes, body: bytes) -> dict[str, Any]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower().startswith("webhook-"):
            headers[name.lower()] = value.strip()
    return {
        "arrived": arrived,
        "path": lines[0].split(" ")[1],
        "headers": headers,
        "body": body.decode(),
    }


async def run_receiver(port: int) -> None:
    records: list[tuple[float, bytes, bytes]] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ReceiverProtocol(records), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


class Receiver:
    """The receiver child process and a client of its control routes."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.client = httpx.AsyncClient(base_url=self.url, timeout=60)

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(THIS_SCRIPT), "_receive", str(self.port)
        )
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                await self.count()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the receiver did not start")

    async def count(self) -> int:
        response = await self.client.get("/__stats")
        return int(response.json()["count"])

    async def dump(self) -> list[dict[str, Any]]:
        """What arrived since the last dump."""
        response = await self.client.post("/__dump")
        return [json.loads(line) for line in response.text.splitlines()]

    async def wait_for(self, count: int, seconds: float) -> int:
        """Until `count` requests arrived or `seconds` passed; returns how many did."""
        deadline = time.monotonic() + seconds
        received = await self.count()
        while received < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            received = await self.count()
        return received

    async def stop(self) -> None:
        await self.client.aclose()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


# --------------------------------------------------------------------------- checks


def verify(records: Sequence[dict[str, Any]], secrets_by_path: dict[str, str]) -> dict[str, Any]:
    """Check a random sample with the standardwebhooks library, as a receiver would."""
    sample = random.sample(list(records), min(VERIFY_SAMPLE, len(records)))
    good, bad = 0, []
    for record in sample:
        try:
            Webhook(secrets_by_path[record["path"]]).verify(record["body"], record["headers"])
            good += 1
        except (WebhookVerificationError, KeyError) as exc:
            bad.append(f"{record['headers'].get('webhook-id')}: {exc}")
    ids_seen = [r["headers"].get("webhook-id") for r in records]
    return {
        "verified": good,
        "failed": len(bad),
        "failures": bad[:5],
        "duplicates": len(ids_seen) - len(set(ids_seen)),
    }


async def create_endpoint(client: httpx.AsyncClient, url: str, events: list[str]) -> dict[str, Any]:
    response = await client.post(f"{API}/webhooks", json={"url": url, "events": events})
    response.raise_for_status()
    endpoint: dict[str, Any] = response.json()["data"]
    return endpoint


async def succeeded(db: AsyncEngine, endpoint_ids: Sequence[str]) -> int:
    async with db.connect() as connection:
        count = await connection.scalar(
            sa.text(
                "SELECT count(*) FROM webhook_deliveries "
                "WHERE endpoint_id = ANY(:ids) AND status = 'succeeded'"
            ),
            {"ids": list(endpoint_ids)},
        )
    return int(count or 0)


# --------------------------------------------------------------------------- scenarios


async def live(
    client: httpx.AsyncClient,
    receiver: Receiver,
    probe: Probe,
    db: AsyncEngine,
    rate: float,
    duration: float,
    secrets_by_path: dict[str, str],
) -> dict[str, Any]:
    """Jobs created at `rate` per second for `duration` seconds; job.created deliveries."""
    total = int(rate * duration)
    created: dict[str, float] = {}
    failures: list[str] = []
    in_flight = asyncio.Semaphore(64)
    spec = job_spec(["true"])

    async def create() -> None:
        async with in_flight:
            try:
                response = await client.post(f"{API}/jobs", json=spec)
            except httpx.HTTPError as exc:
                # Not retried: the job may have been created all the same.
                failures.append(f"{type(exc).__name__}: {exc}")
                return
        if response.status_code != 201:
            failures.append(f"{response.status_code} {response.text[:200]}")
            return
        job = response.json()["data"]
        created[job["id"]] = parse_time(job["createdAt"])

    first, first_tx = probe.snapshot(), await pg_transactions(db)
    started = time.monotonic()
    tasks = []
    # Open loop: the i-th job is due at i / rate, whether or not earlier ones are done.
    for index in range(total):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(create()))
    await asyncio.gather(*tasks)
    submit_seconds = time.monotonic() - started
    await receiver.wait_for(len(created), 30)
    last, last_tx = probe.snapshot(), await pg_transactions(db)
    records = await receiver.dump()
    delays, seen = [], set()
    for record in records:
        body = json.loads(record["body"])
        job_id = (body.get("data") or {}).get("id")
        if body.get("type") == "job.created" and job_id in created and job_id not in seen:
            seen.add(job_id)
            delays.append(record["arrived"] - created[job_id])
    spent = max(last.wall - first.wall, 1e-9)
    return {
        "rate_target": rate,
        "rate_achieved": len(created) / submit_seconds,
        "jobs_created": len(created),
        "create_failures": len(failures),
        "failure_examples": list(dict.fromkeys(failures))[:3],
        "delivered": len(seen),
        "missing": len(created) - len(seen),
        "delay_ms": summary_ms(delays),
        "usage": usage(first, last),
        "pg_transactions_per_s": (last_tx - first_tx) / spent,
        "signatures": verify(records, secrets_by_path),
    }


async def backlog(
    receiver: Receiver,
    probe: Probe,
    db: AsyncEngine,
    account_id: str,
    endpoints: Sequence[dict[str, Any]],
    count: int,
    payload: str,
    secrets_by_path: dict[str, str],
) -> dict[str, Any]:
    """`count` deliveries spread over `endpoints`, written in one transaction."""
    endpoint_ids = [endpoints[i % len(endpoints)]["id"] for i in range(count)]
    async with database.transaction(db) as connection:
        await webhooks_repository.enqueue(
            connection,
            account_id=account_id,
            event_type="job.created",
            job_id=None,
            payload=payload,
            ids=[ids.new_id("msg") for _ in endpoint_ids],
            endpoint_ids=endpoint_ids,
        )
    committed = time.time()
    first, first_tx = probe.snapshot(), await pg_transactions(db)
    progress: list[tuple[float, int]] = []
    deadline = time.monotonic() + count / 20 + 60
    received = 0
    while time.monotonic() < deadline:
        received = await receiver.count()
        progress.append((time.time(), received))
        if received >= count:
            break
        await asyncio.sleep(0.1)
    at_receiver = probe.snapshot()
    recorded, recorded_at = 0, None
    while time.monotonic() < deadline:
        recorded = await succeeded(db, [e["id"] for e in endpoints])
        if recorded >= count:
            recorded_at = time.time()
            break
        await asyncio.sleep(0.1)
    last_tx = await pg_transactions(db)
    records = await receiver.dump()
    arrivals = sorted(r["arrived"] for r in records)
    all_in = arrivals[-1] - committed if len(arrivals) >= count else None
    # The middle 80 %: the rate once the dispatcher is going and before the tail.
    middle = None
    if len(arrivals) >= 10:
        low, high = percentile(arrivals, 10), percentile(arrivals, 90)
        middle = 0.8 * len(arrivals) / max(high - low, 1e-9)
    spent = max(at_receiver.wall - first.wall, 1e-9)
    return {
        "deliveries": count,
        "endpoints": len(endpoints),
        "received": len(records),
        "first_arrival_after_s": arrivals[0] - committed if arrivals else None,
        "all_received_after_s": all_in,
        "received_per_s": count / all_in if all_in else None,
        "received_per_s_middle_80pct": middle,
        "all_recorded_after_s": recorded_at - committed if recorded_at else None,
        "recorded_per_s": count / (recorded_at - committed) if recorded_at else None,
        "recorded": recorded,
        "usage": usage(first, at_receiver),
        "pg_transactions_per_s": (last_tx - first_tx) / spent,
        "signatures": verify(records, secrets_by_path),
    }


# --------------------------------------------------------------------------- main


async def sample_payload(client: httpx.AsyncClient) -> str:
    """A realistic body: job.created with a real job document, as the gateway sends it."""
    response = await client.post(f"{API}/jobs", json=job_spec(["true"]))
    response.raise_for_status()
    job = (await client.get(f"{API}/jobs/{response.json()['data']['id']}")).json()["data"]
    return json.dumps(
        {"type": "job.created", "timestamp": job["createdAt"], "data": job},
        separators=(",", ":"),
    )


async def bench(args: argparse.Namespace, database_url: str, store: Database) -> dict[str, Any]:
    db = database.create_engine(database_url, pool_size=2)
    key = await create_admin_key(db)
    async with db.connect() as connection:
        account_id = await connection.scalar(
            sa.text("SELECT id FROM accounts WHERE name = 'bench'")
        )
    settings = {
        "engine_enabled": False,
        "webhooks_enabled": True,
        "webhook_allowed_networks": "127.0.0.0/8",
        "webhook_concurrency": args.concurrency,
        "database_pool_size": args.pool_size,
    }
    receiver = Receiver()
    runtime = ContainerRuntime(store.directory, args.docker_host)
    gateway = Gateway(
        database_url, settings, runtime.url, log_file("webhook_throughput", "gateway")
    )
    document: dict[str, Any] = {"settings": settings, "live": [], "backlog": []}
    headers = {"Authorization": f"Bearer {key}"}
    try:
        # POST /jobs asks the local provider for its health, so a runtime must answer.
        await runtime.start()
        await receiver.start()
        await gateway.start()
        assert receiver.process is not None
        probe = Probe(gateway.pid, store.postmaster_pid, others={"receiver": receiver.process.pid})
        async with httpx.AsyncClient(
            base_url=gateway.url,
            headers=headers,
            timeout=60,
            limits=httpx.Limits(max_connections=64),
        ) as client:
            payload = await sample_payload(client)
            await asyncio.sleep(2)
            await receiver.dump()  # nothing subscribed yet; start empty anyway
            document["payload_bytes"] = len(payload)
            # Live first: afterwards the endpoint is switched off, so that the backlog
            # endpoints are the only ones receiving anything.
            endpoint = await create_endpoint(client, f"{receiver.url}/live", ["*"])
            secrets_by_path = {"/live": endpoint["secret"]}
            for rate in args.rates:
                print(f"live: {rate} jobs/s for {args.duration} s", flush=True)
                result = await live(
                    client,
                    receiver,
                    probe,
                    db,
                    rate,
                    args.duration,
                    secrets_by_path,
                )
                document["live"].append(result)
                print_live(result)
            await client.patch(f"{API}/webhooks/{endpoint['id']}", json={"active": False})
            for count in args.endpoints:
                endpoints = [
                    await create_endpoint(client, f"{receiver.url}/backlog/{count}/{i}", ["*"])
                    for i in range(count)
                ]
                secrets_by_path.update(
                    {f"/backlog/{count}/{i}": e["secret"] for i, e in enumerate(endpoints)}
                )
                print(f"backlog: {args.backlog} deliveries over {count} endpoint(s)", flush=True)
                result = await backlog(
                    receiver,
                    probe,
                    db,
                    account_id,
                    endpoints,
                    args.backlog,
                    payload,
                    secrets_by_path,
                )
                document["backlog"].append(result)
                print_backlog(result)
                for e in endpoints:
                    await client.patch(f"{API}/webhooks/{e['id']}", json={"active": False})
    finally:
        await gateway.stop()
        await receiver.stop()
        await runtime.stop()
        document["gateway_log"] = gateway.log_problems()
        for line in document["gateway_log"]["examples"]:
            print(f"  gateway log: {line}")
        await db.dispose()
    return document


def print_live(result: dict[str, Any]) -> None:
    delay = result["delay_ms"]
    cores = result["usage"]["cores"]
    print(
        f"  {result['rate_achieved']:.0f} jobs/s: delivered {result['delivered']}/"
        f"{result['jobs_created']}, delay p50 {fmt(delay.get('p50'), 0)} p99 "
        f"{fmt(delay.get('p99'), 0)} ms, gateway {100 * cores['gateway']:.0f}% CPU, "
        f"signatures {result['signatures']['verified']} ok / {result['signatures']['failed']} bad",
        flush=True,
    )


def print_backlog(result: dict[str, Any]) -> None:
    cores = result["usage"]["cores"]
    print(
        f"  received all after {fmt(result['all_received_after_s'], 2)} s = "
        f"{fmt(result['received_per_s'], 0)}/s (middle 80 %: "
        f"{fmt(result['received_per_s_middle_80pct'], 0)}/s), recorded "
        f"{fmt(result['recorded_per_s'], 0)}/s; gateway {100 * cores['gateway']:.0f}% CPU, "
        f"postgres {100 * cores.get('postgres', 0):.0f}%, receiver "
        f"{100 * cores.get('receiver', 0):.0f}%",
        flush=True,
    )


def print_report(document: dict[str, Any]) -> None:
    settings = document["settings"]
    print(
        f"\nwebhook_concurrency={settings['webhook_concurrency']}, per-endpoint in flight 8 "
        f"(fixed), database_pool_size={settings['database_pool_size']}, payload "
        f"{document.get('payload_bytes')} bytes"
    )
    rows = []
    for result in document["live"]:
        delay = result["delay_ms"]
        cores = result["usage"]["cores"]
        rows.append(
            [
                f"{result['rate_target']:.0f}",
                f"{result['rate_achieved']:.0f}",
                f"{result['delivered']}/{result['jobs_created']}",
                fmt(delay.get("p50"), 0),
                fmt(delay.get("p95"), 0),
                fmt(delay.get("p99"), 0),
                fmt(delay.get("max"), 0),
                f"{100 * cores['gateway']:.0f}",
                f"{100 * cores.get('postgres', 0):.0f}",
                f"{result['usage']['other_cores']:.2f}",
            ]
        )
    print("\nLive: job.created deliveries while jobs are created at a fixed rate")
    headers = [
        "jobs/s target",
        "achieved",
        "delivered",
        "delay p50 ms",
        "p95",
        "p99",
        "max",
        "gw CPU %",
        "pg CPU %",
        "other cores",
    ]
    print(table(headers, rows))
    rows = []
    for result in document["backlog"]:
        cores = result["usage"]["cores"]
        rows.append(
            [
                str(result["deliveries"]),
                str(result["endpoints"]),
                fmt(result["all_received_after_s"], 2),
                fmt(result["received_per_s"], 0),
                fmt(result["received_per_s_middle_80pct"], 0),
                fmt(result["recorded_per_s"], 0),
                f"{100 * cores['gateway']:.0f}",
                f"{100 * cores.get('postgres', 0):.0f}",
                f"{100 * cores.get('receiver', 0):.0f}",
                f"{result['pg_transactions_per_s']:.0f}",
                f"{result['usage']['other_cores']:.2f}",
            ]
        )
    print("\nBacklog: deliveries already in the outbox")
    headers = [
        "deliveries",
        "endpoints",
        "all in s",
        "per s",
        "middle 80 % per s",
        "recorded per s",
        "gw CPU %",
        "pg CPU %",
        "receiver %",
        "pg tx/s",
        "other cores",
    ]
    print(table(headers, rows))
    best = max((r["received_per_s"] or 0 for r in document["backlog"]), default=None)
    p99s = [r["delay_ms"].get("p99") for r in document["live"] if r["delay_ms"]["count"]]
    throughput = (
        "not measured (no backlog run)"
        if best is None
        else f"best {best:.0f}/s ({'met' if best >= THROUGHPUT_TARGET else 'NOT met'})"
    )
    if not p99s:
        delay = "not measured (no live run)"
    else:
        delay = ", ".join(
            f"{r['rate_target']:.0f}/s -> {fmt(r['delay_ms'].get('p99'), 0)} ms"
            for r in document["live"]
        )
        met = all(p < DELAY_TARGET_P99_MS for p in p99s)
        delay += " (met at every rate)" if met else " (NOT met at every rate)"
    print(
        f"targets: >= {THROUGHPUT_TARGET:.0f} deliveries/s: {throughput}; "
        f"p99 delay < {DELAY_TARGET_P99_MS:.0f} ms: {delay}"
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    def numbers(text: str) -> list[int]:
        return [int(part) for part in text.split(",") if part]

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=2000, help="deliveries per backlog run")
    parser.add_argument("--endpoints", type=numbers, default=[1, 4], help="endpoints per run")
    parser.add_argument("--rates", type=numbers, default=[50, 200], help="jobs/s, live runs")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per live run")
    parser.add_argument("--concurrency", type=int, default=64, help="webhook_concurrency")
    parser.add_argument("--pool-size", type=int, default=10, help="database_pool_size")
    add_runtime_argument(parser)
    return parser.parse_args(argv)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_receive":
        runner: Any = asyncio.run
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
        with contextlib.suppress(KeyboardInterrupt):
            runner(run_receiver(int(sys.argv[2])))
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
        "benchmark": "webhook_throughput",
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "code": code,
        "code_changed_during_run": code_fingerprint() != code,
        "machine": machine(),
        **document,
    }
    # Written before printing, so that a report that fails to print loses nothing.
    path = write_results("webhook_throughput", document)
    print_report(document)
    print(f"\nresults: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
