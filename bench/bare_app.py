"""The floor the gateway is measured against: Starlette + asyncpg and nothing else.

It runs the same SQL the gateway runs for the two benchmarked endpoints, on the same
schema, but skips everything the gateway adds around it: no API key lookup, no pydantic
validation, no SQLAlchemy, no explicit transaction, no response models. Every request acts
for one account fixed at start-up.

- POST /jobs: one statement inserts the job and its `created` event (the gateway's CTE).
- GET /jobs: the gateway's default page query (account, created_at DESC, id DESC, LIMIT 21),
  optionally filtered by one `status` or one `provider`, or continued after a keyset
  `after=<created_at ISO>,<id>`; plus the total from job_counts.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PAGE_SIZE = 20

_INSERT_JOB = """
WITH new_job AS (
    INSERT INTO jobs (id, account_id, provider, status, image, cpu, memory, storage, duration,
                      config, results)
    VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)
    RETURNING *
), created_event AS (
    INSERT INTO job_events (job_id, seq, type, timestamp{event_account})
    SELECT id, 1, 'created', created_at{event_account} FROM new_job
)
SELECT * FROM new_job
"""
# Later schemas also store the account on each event (the gateway fills it in): same columns.
_EVENTS_HAVE_ACCOUNT = """
SELECT EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'job_events'
      AND column_name = 'account_id'
)
"""

_PAGE = (
    "SELECT * FROM jobs WHERE account_id = $1 {extra} ORDER BY created_at DESC, id DESC LIMIT {n}"
)
# One prepared statement per shape, as the gateway's query compiler also produces: a single
# statement with optional `$2 IS NULL OR ...` filters would get one poor generic plan.
_LIST_QUERIES = {
    "default": _PAGE.format(extra="", n=PAGE_SIZE + 1),
    "status": _PAGE.format(extra="AND status = $2", n=PAGE_SIZE + 1),
    "provider": _PAGE.format(extra="AND provider = $2", n=PAGE_SIZE + 1),
    "after": _PAGE.format(extra="AND (created_at, id) < ($2, $3)", n=PAGE_SIZE + 1),
}
_TOTAL = "SELECT coalesce(sum(n), 0) FROM job_counts WHERE account_id = $1"
_TOTAL_BY = {
    "status": _TOTAL + " AND status = $2",
    "provider": _TOTAL + " AND provider = $2",
}
# The API's config column: what JobSpec.model_dump writes for the fields beyond resources.
_CONFIG_KEYS = ("env", "ports", "volumes", "command", "args")
_CONFIG_DEFAULTS: dict[str, Any] = {"env": {}, "ports": [], "volumes": [], "command": None}
_SUMMARY_COLUMNS = (
    "id",
    "provider",
    "status",
    "image",
    "cpu",
    "memory",
    "storage",
    "duration",
    "created_at",
    "started_at",
    "ended_at",
)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _summary(row: asyncpg.Record) -> dict[str, Any]:
    summary = {name: row[name] for name in _SUMMARY_COLUMNS}
    summary["cost"] = {"current": row["cost_current"], "projected": row["cost_projected"]}
    return summary


def _json(document: Any, status_code: int = 200) -> Response:
    body = json.dumps(document, default=_json_default, separators=(",", ":"))
    return Response(body, status_code=status_code, media_type="application/json")


def create_app(
    dsn: str,
    account_id: str,
    *,
    pool_size: int = 10,
    on_connect: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> Starlette:
    """The bare app; the pool matches the gateway's (pool_size, up to twice that).
    `on_connect` runs on each new connection (the benchmark's query timer)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=pool_size,
            max_size=2 * pool_size,
            server_settings={"timezone": "UTC"},
            init=on_connect,
        )
        with_account = await pool.fetchval(_EVENTS_HAVE_ACCOUNT)
        insert_job = _INSERT_JOB.replace("{event_account}", ", account_id" if with_account else "")
        try:
            yield {"pool": pool, "insert_job": insert_job}
        finally:
            await pool.close()

    async def create_job(request: Request) -> Response:
        spec = json.loads(await request.body())
        config = {key: spec.get(key, _CONFIG_DEFAULTS.get(key)) for key in _CONFIG_KEYS}
        async with request.state.pool.acquire() as connection:
            row = await connection.fetchrow(
                request.state.insert_job,
                f"job_{secrets.token_hex(8)}",
                account_id,
                spec["provider"],
                spec["image"],
                spec["cpu"],
                spec["memory"],
                spec["storage"],
                spec["duration"],
                json.dumps(config),
                '{"exitCode": null, "outputUrl": null}',
            )
        job = _summary(row)
        job["config"] = config
        job["results"] = {"exitCode": None, "outputUrl": None}
        job["events"] = [{"type": "created", "timestamp": row["created_at"], "message": None}]
        return _json({"success": True, "data": job}, status_code=201)

    async def list_jobs(request: Request) -> Response:
        params = request.query_params
        shape, args, total_shape, total_args = "default", [account_id], None, [account_id]
        if "status" in params:
            shape, total_shape = "status", "status"
            args.append(params["status"])
            total_args.append(params["status"])
        elif "provider" in params:
            shape, total_shape = "provider", "provider"
            args.append(params["provider"])
            total_args.append(params["provider"])
        elif "after" in params:
            created_at, _, job_id = params["after"].partition(",")
            shape = "after"
            args += [datetime.fromisoformat(created_at), job_id]
        total_sql = _TOTAL_BY[total_shape] if total_shape else _TOTAL
        async with request.state.pool.acquire() as connection:
            rows = await connection.fetch(_LIST_QUERIES[shape], *args)
            total = await connection.fetchval(total_sql, *total_args)
        next_after = None
        if len(rows) > PAGE_SIZE:
            last = rows[PAGE_SIZE - 1]
            next_after = f"{last['created_at'].isoformat()},{last['id']}"
        return _json(
            {
                "success": True,
                "data": [_summary(row) for row in rows[:PAGE_SIZE]],
                "meta": {"total": total, "nextAfter": next_after},
            }
        )

    return Starlette(
        routes=[
            Route("/jobs", create_job, methods=["POST"]),
            Route("/jobs", list_jobs, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
