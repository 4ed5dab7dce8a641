"""Request rate limits per API key: a token bucket per key in each process, kept in step
with the other processes through shared counters in Postgres (app.rate_limits.repository).

A request is granted from the process's own bucket, with no round trip. Every sync interval
the process writes how many requests it has granted per key and reads how many the other
processes have, in one statement for all keys, and takes the others' new grants from its
own bucket too. A bucket may go below zero that way: the debt is waited off before the next
grant. So every process spends, up to the sync lag, from one bucket per key. Tolerance
(measured in tests/rate_limits/test_processes.py, stated in docs/operations.md): over T
seconds a key gets at most rate*T + burst + (N-1)*rate*L requests from N processes, L the lag
(at most two sync intervals and a statement), once T exceeds (N-1)*burst/rate; before that
each process may have granted one burst of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.rate_limits import repository

logger = logging.getLogger(__name__)

# A bucket unused this long (and full, and written) is dropped; its shared counter is
# deleted after FORGET_SECONDS, which must be longer, or a process still holding the bucket
# would write its whole count again as if new.
IDLE_SECONDS = 60.0
FORGET_SECONDS = 600.0
FORGET_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Decision:
    """A request's answer from the bucket, and what the RateLimit headers say of it."""

    quota: int  # the burst: requests a full bucket holds
    window: int  # seconds an empty bucket takes to fill
    remaining: int
    reset: int  # seconds until the bucket is full again
    # None: granted. Otherwise refused, and whole seconds until one request can be.
    retry_after: int | None = None


class _Bucket:
    __slots__ = ("burst", "others", "rate", "spent", "tokens", "updated", "used", "written")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now
        self.used = now
        self.spent = 0  # requests this process granted from it, ever
        self.written = 0  # `spent` as last written to the shared counter
        self.others: int | None = None  # the other processes' count as last read

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


class RateLimiter:
    def __init__(self, db: AsyncEngine, sync_interval: float) -> None:
        self._db = db
        self._interval = sync_interval
        self._process_id = secrets.token_hex(8)
        self._buckets: dict[str, _Bucket] = {}
        self._task: asyncio.Task[None] | None = None

    def take(self, key_id: str, rate: float | None, burst: int | None) -> Decision | None:
        """Grants the key one request, or refuses it (`retry_after`); None: no limit."""
        if not rate:
            return None
        burst = burst or max(1, math.ceil(rate))
        now = time.monotonic()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(rate, burst, now)
        else:
            # An account's limits can change (app.accounts); the bucket follows.
            bucket.rate, bucket.burst = rate, burst
            bucket.refill(now)
        bucket.used = now
        retry_after = None
        if bucket.tokens < 1:
            retry_after = max(1, math.ceil((1 - bucket.tokens) / rate))
        else:
            bucket.tokens -= 1
            bucket.spent += 1
        return Decision(
            quota=burst,
            window=max(1, math.ceil(burst / rate)),
            remaining=max(0, math.floor(bucket.tokens)),
            reset=max(0, math.ceil((burst - bucket.tokens) / rate)),
            retry_after=retry_after,
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rate-limit-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        forgotten = time.monotonic()
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sync()
                if time.monotonic() - forgotten > FORGET_EVERY_SECONDS:
                    forgotten = time.monotonic()
                    async with database.reading(self._db) as connection:
                        await repository.forget_idle(connection, FORGET_SECONDS)
            except Exception:
                # Meanwhile each process still holds every key to the limit on its own.
                logger.warning("rate limit counters could not be shared", exc_info=True)

    async def sync(self) -> None:
        """Writes this process's grants and takes the other processes' new ones."""
        now = time.monotonic()
        for key_id, bucket in list(self._buckets.items()):
            bucket.refill(now)
            idle = now - bucket.used > IDLE_SECONDS
            if idle and bucket.tokens >= bucket.burst and bucket.spent == bucket.written:
                del self._buckets[key_id]
        if not self._buckets:
            return
        written = [(k, b.spent) for k, b in self._buckets.items() if b.spent != b.written]
        watched = list(self._buckets)
        async with database.reading(self._db) as connection:
            rows = await repository.reconcile(connection, self._process_id, written, watched)
        buckets = self._buckets
        for key_id, spent in written:
            if key_id in buckets:
                buckets[key_id].written = spent
        now = time.monotonic()
        for row in rows:
            if row.key_id not in buckets:
                continue
            target = buckets[row.key_id]
            if target.others is None:
                # The others' count so far is a total over their lifetime; only if they
                # granted recently has the shared bucket been drawn, by at most a burst.
                recent = row.idle_seconds < target.burst / target.rate + 2 * self._interval
                debit = min(row.spent, target.burst) if recent else 0
            else:
                # A count can fall (idle counters are deleted): nothing new was granted.
                debit = max(0, row.spent - target.others)
            target.others = row.spent
            target.refill(now)
            target.tokens -= debit
        # No other process counts these keys (now): all they count from now on is new.
        seen = {row.key_id for row in rows}
        for key_id in watched:
            if key_id not in seen and key_id in buckets:
                buckets[key_id].others = 0
