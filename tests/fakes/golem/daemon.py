"""The state every service of the fake yagna shares, and how they wait for one another."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any

from tests.fakes.golem.records import (
    Activity,
    Agreement,
    Demand,
    FakeError,
    Proposal,
    ProviderNode,
    Timing,
)


class Daemon:
    """The daemon's state and the plumbing its services share."""

    def __init__(
        self,
        *,
        app_key: str,
        providers: list[ProviderNode],
        images: dict[str, str],
        timing: Timing | None = None,
    ) -> None:
        self.app_key = app_key
        self.providers = providers
        # Registry: tag -> sha3 hash (a hash resolves to itself).
        self.images = images
        self.timing = timing or Timing()
        self.allocations: dict[str, dict[str, Any]] = {}
        self.released: set[str] = set()
        self.demands: dict[str, Demand] = {}
        self.proposals: dict[str, Proposal] = {}
        self.agreements: dict[str, Agreement] = {}
        self.activities: dict[str, Activity] = {}
        self.debit_notes: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.debit_note_events: list[dict[str, Any]] = []
        self.invoice_events: list[dict[str, Any]] = []
        self.accepted: dict[str, Decimal] = {}  # agreement -> highest amount accepted
        self.paid_from: dict[str, str] = {}  # agreement -> the allocation paying for it
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests
        # False: batch results are answered as JSON even to `Accept: text/event-stream`, as
        # by a daemon or proxy that does not stream.
        self.streams_results = True
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- plumbing ------------------------------------------------------------------------------

    def spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_change(self, deadline: float) -> bool:
        """Until something changes or `deadline` (monotonic); False when it passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
                    return True
        return False

    async def shutdown(self) -> None:
        for activity in self.activities.values():
            await self._kill(activity)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def provider_named(self, name: str) -> ProviderNode:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise FakeError(404, f"no provider {name}")
