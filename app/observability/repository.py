"""The queries behind /metrics and /readyz."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.jobs import repository as jobs_repository
from app.models import job_counts

_TOTALS = sa.select(
    job_counts.c.account_id,
    job_counts.c.provider,
    job_counts.c.status,
    sa.func.sum(job_counts.c.n),
    sa.func.count(),
).group_by(job_counts.c.account_id, job_counts.c.provider, job_counts.c.status)


async def job_totals(connection: AsyncConnection) -> list[tuple[str, str, int]]:
    """Jobs per (provider, status) over every account, from the running totals.

    Those are deltas the triggers append; an account whose deltas piled up is folded on the
    way (as a list request would), so that regular scrapes keep the table, and themselves,
    small."""
    result = await connection.execute(_TOTALS)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    deltas: dict[str, int] = defaultdict(int)
    for account_id, provider, status, count, rows in result:
        totals[(provider, status)] += int(count)
        deltas[account_id] += rows
    for account_id, rows in deltas.items():
        if rows > jobs_repository.COMPACT_COUNTS_AFTER:
            await jobs_repository.compact_counts(connection, account_id)
    return [(provider, status, count) for (provider, status), count in totals.items()]
