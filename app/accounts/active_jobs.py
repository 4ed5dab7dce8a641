"""The active-jobs quota (max_active_jobs), exact without serializing an account's submissions.

Every active job (pending, scheduled, running) holds a place, `jobs.quota_slot`, and no two
active jobs of an account hold the same one (a unique partial index). With a limit L, a
submission stores its job at a random place below L, in the INSERT itself (ON CONFLICT DO
NOTHING): as long as every active job's place is below L, no more than L jobs can be active,
however many processes insert at once, and inserts at different places never wait on each
other. Places need no freeing: a job that stops being active leaves the index.

The INSERT checks in the same statement that no active job holds a place at or above L (the
limit was lowered below them, or a job was stored without one); then, as when a few random
places are all taken (the account is nearly full), the submission takes the exact path: the
account's lock, the count of its active jobs against L, and the lowest free place. That
path is also taken from the start by a submission a budget applies to (the budget check needs
the lock) and by one storing several jobs (a batch): a transaction that already holds a place
must never wait for another's, or two could wait for each other.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import errors
from app.accounts import repository

# Random places tried before the exact path: at half full, three all taken is one in eight.
RANDOM_TRIES = 3
# Without a limit, places are drawn from this range: a limit set later finds them above it
# (and counts them) until those jobs end.
UNLIMITED_PLACES = 2**62
# Places tried under the lock before giving up: each miss is a job that another submission
# stored there meanwhile.
EXACT_TRIES = 100

# Stores the job at a place; None when that place is held (or, given the limit, when an
# active job holds a place at or above it), and then nothing was stored.
InsertAt = Callable[[int, int | None], Awaitable[RowMapping | None]]


def refusal(limit: int, current: int) -> errors.QuotaExceeded:
    return errors.QuotaExceeded(
        f"Quota max_active_jobs exceeded: this account may have at most {limit} jobs pending,"
        f" scheduled or running (now {current}). Nothing was created.",
        [{"quota": "max_active_jobs", "limit": limit, "current": current}],
    )


@dataclass
class Places:
    """The places of one submission's jobs in its account's active-jobs quota, taken in the
    submission's transaction as the jobs are stored."""

    account_id: str
    limit: int | None
    jobs: int  # how many jobs the submission stores
    locked: bool = False  # holds the account's lock: the exact path
    stored: int = 0

    async def lock(self, connection: AsyncConnection) -> None:
        """Take the account's lock and refuse (403) unless the jobs still to store fit."""
        await repository.lock_account(connection, self.account_id)
        self.locked = True
        if self.limit is not None:
            await self._check_count(connection)

    async def store(self, connection: AsyncConnection, insert: InsertAt) -> RowMapping:
        """Store one job through `insert` at a place of the quota, or refuse (403) when the
        account has no place left; a refusal leaves the transaction to be rolled back."""
        if self.limit is None:
            return self._stored(await self._store_unlimited(insert))
        if not self.locked:
            for _ in range(RANDOM_TRIES):
                row = await insert(random.randrange(self.limit), self.limit)
                if row is not None:
                    return self._stored(row)
                if await repository.has_places_from(connection, self.account_id, self.limit):
                    break
            await self.lock(connection)
        for _ in range(EXACT_TRIES):
            place = await repository.free_place(connection, self.account_id, self.limit)
            if place is None:
                await self._check_count(connection)  # jobs ended meanwhile: try again
                continue
            row = await insert(place, None)
            if row is not None:
                return self._stored(row)
        raise refusal(self.limit, await self._others(connection))

    async def _store_unlimited(self, insert: InsertAt) -> RowMapping:
        for _ in range(RANDOM_TRIES):
            row = await insert(random.randrange(UNLIMITED_PLACES), None)
            if row is not None:
                return row
        raise RuntimeError("three random quota places out of 2**62 were all taken")

    async def _check_count(self, connection: AsyncConnection) -> None:
        assert self.limit is not None
        others = await self._others(connection)
        if others + self.jobs > self.limit:
            raise refusal(self.limit, others)

    async def _others(self, connection: AsyncConnection) -> int:
        """Active jobs of the account besides those this submission stored."""
        return await repository.count_active_jobs(connection, self.account_id) - self.stored

    def _stored(self, row: RowMapping) -> RowMapping:
        self.stored += 1
        return row
