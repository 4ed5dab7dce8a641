"""Open SSE streams per API key, counted across every gateway process.

Each open stream holds a lease row for as long as it runs; its process refreshes the
heartbeat of all its leases every HEARTBEAT_SECONDS. A lease not refreshed for STALE_SECONDS
(its process died) no longer counts and is deleted by the next refresh of any process, so a
crash costs a key its places for at most STALE_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import database, errors, ids
from app.accounts import repository
from app.accounts.limits import AccountLimits

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 45.0

T = TypeVar("T")


def lease_key(key_id: str, account_id: str) -> str:
    """Streams opened with a stream token count for the account's tokens together."""
    return f"token:{account_id}" if key_id == "stream-token" else key_id


class StreamLeases:
    def __init__(self, db: AsyncEngine) -> None:
        self._db = db
        self.process = ids.new_id("proc")
        self._task: asyncio.Task[None] | None = None
        # Only the leases of streams still running here are refreshed: one whose release
        # failed goes stale like a dead process's.
        self._open: set[str] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._heartbeat())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with database.transaction(self._db) as connection:
                await repository.delete_process_leases(connection, self.process)

    async def acquire(
        self, connection: AsyncConnection, account_id: str, key_id: str, limits: AccountLimits
    ) -> str:
        """A lease for one more stream of the key, in the caller's transaction; refused
        (403 QUOTA_EXCEEDED) when the key has max_streams_per_key open."""
        key = lease_key(key_id, account_id)
        if limits.max_streams_per_key is not None:
            await repository.lock_key(connection, key)
            current = await repository.count_streams(connection, key, STALE_SECONDS)
            if current >= limits.max_streams_per_key:
                raise errors.QuotaExceeded(
                    f"Quota max_streams_per_key exceeded: this API key may have at most"
                    f" {limits.max_streams_per_key} streams open (now {current}).",
                    [
                        {
                            "quota": "max_streams_per_key",
                            "limit": limits.max_streams_per_key,
                            "current": current,
                        }
                    ],
                )
        lease_id = ids.new_id("lease")
        await repository.insert_lease(connection, lease_id, account_id, key, self.process)
        self._open.add(lease_id)
        return lease_id

    async def holding(self, lease_id: str, stream: AsyncIterator[T]) -> AsyncIterator[T]:
        """`stream`, releasing the lease when it ends, however it ends."""
        try:
            async for item in stream:
                yield item
        finally:
            await asyncio.shield(self._release(lease_id))

    async def _release(self, lease_id: str) -> None:
        self._open.discard(lease_id)
        try:
            async with database.transaction(self._db) as connection:
                await repository.delete_leases(connection, [lease_id])
        except Exception:
            # No longer refreshed, the lease goes stale on its own.
            logger.warning("could not release stream lease %s", lease_id, exc_info=True)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                async with database.transaction(self._db) as connection:
                    await repository.refresh_leases(connection, list(self._open), STALE_SECONDS)
            except Exception:
                logger.warning("stream lease heartbeat failed", exc_info=True)
