"""Seeds one account with N jobs straight in SQL, shaped like the API's own rows.

Going through the API would take hours at a million jobs; INSERT ... SELECT over
generate_series takes minutes. The rows still look like the gateway's: its id format, the
`config`/`results` documents its service writes, one `created` event per job stamped with
the job's created_at, and the count triggers on `jobs` left in place (so job_counts is
built the way production builds it, then folded with the gateway's own compact_counts).

The mix, over one year of history ending just before the run:
- providers: local 40 %, akash 25 %, render 20 %, golem 15 %;
- statuses by age: the last day still has pending/scheduled/running/cancelling work, the
  last 30 days some long runs, anything older has ended (completed/failed/cancelled);
- four job shapes, from a 60 s busybox job to a day-long training job with env, ports,
  a volume and argv, so rows and JSON documents vary in size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.jobs import repository

HISTORY = timedelta(days=365)

_SEED_CHUNK = """
WITH src AS (
    SELECT g,
           -- Evenly spread over the history, oldest first, jittered within each slot.
           CAST(:t_end AS timestamptz)
             - make_interval(secs => (CAST(:n AS bigint) - g + random())
                                     * CAST(:spacing AS double precision)) AS created_at,
           random() AS r_status, random() AS r_provider, random() AS r_shape,
           random() AS r_run, random() AS r_end
    FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint) - 1) AS g
), shaped AS (
    SELECT g, created_at, r_run, r_end,
           'job_' || substr(md5('cortex-bench-' || g), 1, 16) AS id,
           CASE
             WHEN CAST(:t_end AS timestamptz) - created_at < interval '1 day' THEN
               CASE WHEN r_status < 0.10 THEN 'pending' WHEN r_status < 0.20 THEN 'scheduled'
                    WHEN r_status < 0.80 THEN 'running' WHEN r_status < 0.82 THEN 'cancelling'
                    WHEN r_status < 0.94 THEN 'completed' WHEN r_status < 0.98 THEN 'failed'
                    ELSE 'cancelled' END
             WHEN CAST(:t_end AS timestamptz) - created_at < interval '30 days' THEN
               CASE WHEN r_status < 0.08 THEN 'running' WHEN r_status < 0.83 THEN 'completed'
                    WHEN r_status < 0.93 THEN 'failed' ELSE 'cancelled' END
             ELSE
               CASE WHEN r_status < 0.82 THEN 'completed' WHEN r_status < 0.93 THEN 'failed'
                    ELSE 'cancelled' END
           END AS status,
           CASE WHEN r_provider < 0.40 THEN 'local' WHEN r_provider < 0.65 THEN 'akash'
                WHEN r_provider < 0.85 THEN 'render' ELSE 'golem' END AS provider,
           floor(r_shape * 4)::int AS shape
    FROM src
), started AS (
    SELECT shaped.*,
           (ARRAY['busybox:latest', 'nginx:alpine', 'python:3.12-slim',
                  'ghcr.io/acme/trainer:2.1'])[shape + 1] AS image,
           (ARRAY[250, 500, 2000, 8000])[shape + 1] AS cpu,
           (ARRAY['64Mi', '256Mi', '2Gi', '16Gi'])[shape + 1] AS memory,
           (ARRAY['1Gi', '1Gi', '10Gi', '50Gi'])[shape + 1] AS storage,
           (ARRAY[60, 600, 3600, 86400])[shape + 1] AS duration,
           CASE WHEN status IN ('running', 'completed', 'failed', 'cancelling')
                  OR (status = 'cancelled' AND r_run < 0.5)
                THEN created_at + make_interval(secs => 2 + r_run * 60) END AS started_at
    FROM shaped
), finished AS (
    SELECT started.*,
           CASE WHEN status IN ('completed', 'failed')
                  THEN least(started_at + make_interval(secs => duration * (0.05 + 0.95 * r_end)),
                             CAST(:t_end AS timestamptz))
                WHEN status = 'cancelled'
                  THEN coalesce(started_at, created_at) + make_interval(secs => 1 + r_end * 30)
           END AS ended_at,
           -- USD per CPU-hour on each network; the local runtime costs nothing.
           CASE provider WHEN 'akash' THEN 0.02 WHEN 'render' THEN 0.05
                         WHEN 'golem' THEN 0.015 ELSE 0 END AS rate
    FROM started
), new_jobs AS (
    INSERT INTO jobs (id, account_id, provider, status, image, cpu, memory, storage, duration,
                      config, results, cost_current, cost_projected,
                      created_at, started_at, ended_at, updated_at)
    SELECT id, CAST(:account_id AS text), provider, status, image, cpu, memory, storage,
           duration,
           CASE shape
             WHEN 2 THEN '{"env": {"LOG_LEVEL": "info"}, "ports": [], "volumes": [],
                          "command": ["python", "-m", "worker"], "args": null}'::jsonb
             WHEN 3 THEN '{"env": {"LOG_LEVEL": "info", "EPOCHS": "10"},
                          "ports": [{"port": 8080, "expose": true, "protocol": "tcp"}],
                          "volumes": [{"name": "data", "mountPath": "/data", "size": "10Gi",
                                       "readOnly": false}],
                          "command": ["python", "train.py"],
                          "args": ["--epochs", "10"]}'::jsonb
             ELSE '{"env": {}, "ports": [], "volumes": [], "command": null,
                    "args": null}'::jsonb
           END,
           CASE status
             WHEN 'completed' THEN jsonb_build_object(
               'exitCode', 0, 'outputUrl', 'https://outputs.cortex.example/' || id)
             WHEN 'failed' THEN jsonb_build_object(
               'exitCode', CASE WHEN r_end < 0.7 THEN 1 ELSE 137 END, 'outputUrl', NULL,
               'reason', CASE WHEN r_end < 0.7 THEN 'exit_code' ELSE 'oom' END,
               'message', CASE WHEN r_end < 0.7 THEN 'The container exited with code 1.'
                               ELSE 'The container ran out of memory.' END)
             ELSE '{"exitCode": null, "outputUrl": null}'::jsonb
           END,
           round(CAST(cpu / 1000.0 * rate
                      * extract(epoch FROM coalesce(ended_at, CAST(:t_end AS timestamptz))
                                           - coalesce(started_at, created_at)) / 3600
                      AS numeric), 6)
             * (started_at IS NOT NULL)::int,
           round(CAST(cpu / 1000.0 * rate * duration / 3600 AS numeric), 6),
           created_at, started_at, ended_at, coalesce(ended_at, started_at, created_at)
    FROM finished
    RETURNING id, account_id, created_at
)
INSERT INTO job_events (job_id, seq, type, timestamp{event_account})
SELECT id, 1, 'created', created_at{event_account} FROM new_jobs
"""
# job_events.account_id appeared in a later migration (the account-wide event stream); the
# gateway fills it in, so the seed does too wherever the column exists.
EVENTS_HAVE_ACCOUNT = sa.text(
    """
SELECT EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'job_events'
      AND column_name = 'account_id'
)
"""
)


# Active jobs hold places in their account's active-jobs quota (jobs.quota_slot, from
# migration 0016 on): the seeded ones get places 0, 1, 2... as that migration gives them. A job
# without one would send every submission of the account down the quota's exact path.
JOBS_HAVE_QUOTA_PLACES = sa.text(
    """
SELECT EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'jobs'
      AND column_name = 'quota_slot'
)
"""
)
GIVE_QUOTA_PLACES = sa.text(
    """
UPDATE jobs SET quota_slot = numbered.place
FROM (
    SELECT id, row_number() OVER (ORDER BY created_at, id) - 1 AS place
    FROM jobs WHERE account_id = :account_id AND status IN ('pending', 'scheduled', 'running')
) AS numbered
WHERE jobs.id = numbered.id
"""
)


async def seed_jobs(
    engine: AsyncEngine,
    account_id: str,
    count: int,
    *,
    chunk_size: int = 50_000,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Insert `count` jobs for the account, fold the count deltas, and VACUUM ANALYZE.

    One transaction per chunk keeps each statement's trigger transition table and WAL
    burst bounded. Returns the timings.
    """
    t_end = datetime.now(UTC) - timedelta(minutes=1)
    spacing = HISTORY.total_seconds() / max(count, 1)
    started = time.perf_counter()
    async with engine.connect() as connection:
        # Seeding statements can outlast the gateway engine's 30 s statement timeout.
        await connection.execute(sa.text("SET statement_timeout = 0"))
        # Same data on every run with the same --jobs: random() draws from a fixed seed.
        await connection.execute(sa.text("SELECT setseed(0.42)"))
        with_account = bool(await connection.scalar(EVENTS_HAVE_ACCOUNT))
        # str.replace, not format: the SQL's JSON literals are full of braces.
        seed_chunk = sa.text(
            _SEED_CHUNK.replace("{event_account}", ", account_id" if with_account else "")
        )
        await connection.commit()
        for lo in range(0, count, chunk_size):
            hi = min(lo + chunk_size, count)
            async with connection.begin():
                await connection.execute(
                    seed_chunk,
                    {
                        "lo": lo,
                        "hi": hi,
                        "n": count,
                        "spacing": spacing,
                        "t_end": t_end,
                        "account_id": account_id,
                    },
                )
            if progress is not None:
                progress(hi, time.perf_counter() - started)
        inserted = time.perf_counter()

        async with connection.begin():
            await repository.compact_counts(connection, account_id)
            if await connection.scalar(JOBS_HAVE_QUOTA_PLACES):
                await connection.execute(GIVE_QUOTA_PLACES, {"account_id": account_id})
        # VACUUM, not just ANALYZE: it also sets the visibility map, as autovacuum would have
        # long ago on a real year-old table, and it keeps autovacuum from waking up on the
        # fresh million rows in the middle of a measurement.
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("jobs", "job_events", "job_counts"):
            await connection.execute(sa.text(f"VACUUM (ANALYZE) {table}"))
    finished = time.perf_counter()
    return {
        "jobs": count,
        "chunk_size": chunk_size,
        "insert_s": inserted - started,
        "vacuum_analyze_s": finished - inserted,
        "total_s": finished - started,
    }
