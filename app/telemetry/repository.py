"""Reads of a job's stored log lines and metric samples."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import jobs, log_lines


async def tail_logs(
    connection: AsyncConnection, job_id: str, *, tail: int, since: datetime | None
) -> Sequence[RowMapping]:
    """The last `tail` lines (at or after `since`), oldest first."""
    statement = sa.select(log_lines).where(log_lines.c.job_id == job_id)
    if since is not None:
        statement = statement.where(log_lines.c.timestamp >= since)
    newest = statement.order_by(log_lines.c.seq.desc()).limit(tail).subquery()
    result = await connection.execute(sa.select(newest).order_by(newest.c.seq))
    return result.mappings().all()


async def logs_pruned(connection: AsyncConnection, job_id: str) -> bool:
    """Whether the retention policy removed the job's log lines (then none are left)."""
    statement = sa.select(jobs.c.logs_pruned_at.is_not(None)).where(jobs.c.id == job_id)
    return bool(await connection.scalar(statement))


_BUCKETS = sa.text(
    """
    WITH buckets AS (
        SELECT date_bin(CAST(:resolution AS interval), timestamp, TIMESTAMPTZ '2000-01-01')
                   AS bucket,
               avg(cpu_millicores) AS cpu,
               avg(memory_bytes) AS memory,
               min(network_rx_bytes) AS rx_first, max(network_rx_bytes) AS rx_last,
               min(network_tx_bytes) AS tx_first, max(network_tx_bytes) AS tx_last
        FROM metric_samples
        WHERE job_id = :job_id
          AND timestamp >= date_bin(CAST(:resolution AS interval), now(),
                                    TIMESTAMPTZ '2000-01-01')
                           - CAST(:period AS interval) + CAST(:resolution AS interval)
        GROUP BY bucket
    )
    SELECT bucket, cpu, memory,
           rx_last - coalesce(lag(rx_last) OVER w, rx_first) AS rx,
           tx_last - coalesce(lag(tx_last) OVER w, tx_first) AS tx
    FROM buckets
    WINDOW w AS (ORDER BY bucket)
    ORDER BY bucket
    """
)


async def metric_buckets(
    connection: AsyncConnection, job_id: str, *, period: timedelta, resolution: timedelta
) -> Sequence[RowMapping]:
    """Samples averaged per bucket (cpu, memory) and bytes moved per bucket (network);
    network counters are cumulative, so a bucket's traffic is the rise since the last one.

    The window is the last period / resolution buckets, the current one included, so the
    series never has more points than that."""
    result = await connection.execute(
        _BUCKETS, {"job_id": job_id, "period": period, "resolution": resolution}
    )
    return result.mappings().all()
