"""Who should build a GET /jobs page's JSON: the gateway from the columns, or PostgreSQL?

Runs the default list page's query (the account's newest 21 jobs) two ways on one asyncpg
connection, over a seeded database, and reports the CPU each costs per page, in this
process and in the PostgreSQL backend serving the connection (from /proc):

- `rows`: the summary's columns, decoded by asyncpg, turned into dicts by
  `app.jobs.summary.job_summary` and serialized once by `pydantic_core.to_json` (what the
  gateway does);
- `pg_json`: `json_build_object(...)::text` per row in the SELECT, the same fields (costs
  as float8, times by to_char), the page joined as bytes with no decoding in Python.

    python bench/list_json.py [--jobs 20000] [--pages 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from pydantic_core import to_json
from sqlalchemy.dialects import postgresql

from app import database, embedded_postgres, migrate
from app.jobs import repository, summary

import jobs_api
import seed

_WHERE = "FROM jobs WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT 21"
# The gateway's own statement for the default page ($1 account, $2 limit, $3 offset).
_ROWS = str(
    repository._list_statement("createdAt", True, (False,) * 5, None).compile(
        dialect=postgresql.asyncpg.dialect()
    )
)
_TIME = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
_PG_JSON = f"""
SELECT json_build_object(
    'id', id, 'provider', provider, 'status', status, 'image', image, 'cpu', cpu,
    'memory', memory, 'storage', storage, 'duration', duration,
    'createdAt', {_TIME.format("created_at")}, 'startedAt', {_TIME.format("started_at")},
    'endedAt', {_TIME.format("ended_at")},
    'cost', json_build_object(
        'current', CASE WHEN status IN ('running', 'cancelling') AND started_at IS NOT NULL
            THEN round(usd_per_hour * greatest(extract(epoch FROM now() - started_at) / 3600, 0),
                       6)::float8
            ELSE cost_current::float8 END,
        'projected', cost_projected::float8, 'currency', 'USD'),
    'endpoints', endpoints, 'templateId', template_id, 'batchId', batch_id,
    'progress', progress, 'statusMessage', status_message
)::text AS job, created_at, id {_WHERE}
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _rows_page(connection: asyncpg.Connection, account_id: str) -> bytes:
    rows = await connection.fetch(_ROWS, account_id, 21, 0)
    now = datetime.now(UTC)
    page = [summary.job_summary(row, now) for row in rows[:20]]
    return to_json({"success": True, "data": page})


async def _pg_json_page(connection: asyncpg.Connection, account_id: str) -> bytes:
    rows = await connection.fetch(_PG_JSON, account_id)
    jobs = b",".join(row[0].encode() for row in rows[:20])
    return b'{"success":true,"data":[' + jobs + b"]}"


async def measure(url: str, account_id: str, pages: int) -> dict[str, Any]:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn, server_settings={"timezone": "UTC"})
    try:
        await connection.set_type_codec(
            "jsonb", encoder=lambda v: v, decoder=__import__("json").loads, schema="pg_catalog"
        )
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        results: dict[str, Any] = {}
        for name, page in (("rows", _rows_page), ("pg_json", _pg_json_page)) * 2:
            for _ in range(200):  # warm: prepared statements, caches
                await page(connection, account_id)
            own, pg, wall = time.process_time(), _cpu_seconds(backend), time.perf_counter()
            for _ in range(pages):
                body = await page(connection, account_id)
            results[name] = {
                "gateway_ms": 1000 * (time.process_time() - own) / pages,
                "postgres_ms": 1000 * (_cpu_seconds(backend) - pg) / pages,
                "wall_ms": 1000 * (time.perf_counter() - wall) / pages,
                "bytes": len(body),
            }
        return results
    finally:
        await connection.close()


async def prepare(url: str, jobs: int) -> str:
    engine = database.create_engine(url, pool_size=2)
    try:
        account_id, _ = await jobs_api.create_bench_key(engine)
        await seed.seed_jobs(engine, account_id, jobs)
        return account_id
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=3_000)
    args = parser.parse_args()
    temp_dir = Path(tempfile.mkdtemp(prefix="cortex-list-json-"))
    try:
        url = embedded_postgres.start(temp_dir)
        migrate.upgrade(url)
        account_id = asyncio.run(prepare(url, args.jobs))
        results = asyncio.run(measure(url, account_id, args.pages))
        for name, figures in results.items():
            print(
                f"{name:<8} gateway {figures['gateway_ms']:.3f} ms  postgres"
                f" {figures['postgres_ms']:.3f} ms  together"
                f" {figures['gateway_ms'] + figures['postgres_ms']:.3f} ms  wall"
                f" {figures['wall_ms']:.3f} ms  ({figures['bytes']} bytes)"
            )
    finally:
        embedded_postgres.stop_all()
        shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
