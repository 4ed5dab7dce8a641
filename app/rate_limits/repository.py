"""The shared per-key counters every gateway process reconciles its request buckets with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# One statement for all keys: the process's own counters are written and the other
# processes' read back in the same round trip. The read does not see this statement's own
# writes, which is what it wants: it excludes this process anyway.
_RECONCILE = sa.text(
    """
    WITH mine AS (
        INSERT INTO rate_limit_usage (key_id, process_id, spent, updated_at)
        SELECT key_id, :process_id, spent, now()
        FROM unnest(CAST(:written_keys AS text[]), CAST(:written_spent AS bigint[]))
            AS written(key_id, spent)
        ON CONFLICT (key_id, process_id)
        DO UPDATE SET spent = EXCLUDED.spent, updated_at = EXCLUDED.updated_at
    )
    SELECT key_id, sum(spent)::bigint AS spent,
           extract(epoch FROM now() - max(updated_at))::float8 AS idle_seconds
    FROM rate_limit_usage
    WHERE key_id = ANY(CAST(:watched_keys AS text[])) AND process_id <> :process_id
    GROUP BY key_id
    """
)

_FORGET = sa.text(
    "DELETE FROM rate_limit_usage WHERE updated_at < now() - make_interval(secs => :seconds)"
)


@dataclass(frozen=True)
class OthersSpent:
    key_id: str
    # Requests the other processes have granted with this key since they first served it.
    spent: int
    # Since the most recent of those was counted.
    idle_seconds: float


async def reconcile(
    connection: AsyncConnection,
    process_id: str,
    written: Sequence[tuple[str, int]],
    watched: Sequence[str],
) -> list[OthersSpent]:
    result = await connection.execute(
        _RECONCILE,
        {
            "process_id": process_id,
            "written_keys": [key for key, _ in written],
            "written_spent": [spent for _, spent in written],
            "watched_keys": list(watched),
        },
    )
    return [OthersSpent(row.key_id, row.spent, row.idle_seconds) for row in result]


async def forget_idle(connection: AsyncConnection, seconds: float) -> None:
    """Counters of keys nobody used for `seconds` (and of processes gone)."""
    await connection.execute(_FORGET, {"seconds": seconds})
