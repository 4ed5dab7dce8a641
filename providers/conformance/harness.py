"""The interface a provider implements to join the conformance suite, and the helpers the
cases drive adapters with (the way the engine does: submit once, then status, logs, watch).

A provider joins with a subclass of `Harness`, named by a test class that subclasses
`providers.conformance.suite.ProviderConformance` (see that module).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from providers.base import Provider
from providers.types import (
    Handle,
    LogLine,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)

ENDED = (WorkloadState.EXITED, WorkloadState.FAILED)
# The states a `WorkloadStatus.waiting` message may describe.
WAITING = (WorkloadState.PENDING, WorkloadState.STARTING)


class Harness(ABC):
    """What the suite needs from one provider. Instances are made per test with no
    arguments; `running()` is entered before anything else is called."""

    name: str
    # Seconds a short job (a few lines, a pause of at most a second) may take to end,
    # including placement on the network.
    finish_within: float = 60.0
    # Whether the network reports a container's exit code. Those that only report that the
    # run failed (Render) end a non-zero exit as FAILED, reason exit_code, no code.
    exit_codes: bool = True

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start whatever the adapter talks to (a fake server on a loopback port, a
        container runtime) for one test, and stop it afterwards."""
        yield

    @abstractmethod
    def adapter(self) -> Provider:
        """A fresh adapter pointing at the running network. Each call is a new instance: a
        second one stands for the gateway after a restart (no memory shared but the handle
        and the log cursor). The suite closes every instance it makes."""

    @abstractmethod
    def unreachable_adapter(self) -> Provider:
        """An adapter configured for a network address where nothing answers."""

    @abstractmethod
    def printing(
        self, job_id: str, lines: list[str], exit_code: int, pause: float = 0.0
    ) -> WorkloadSpec:
        """A spec that prints `lines` to stdout in order, `pause` seconds apart, then ends
        with `exit_code`."""

    @abstractmethod
    def long_running(self, job_id: str) -> WorkloadSpec:
        """A spec that runs for minutes unless stopped."""

    @abstractmethod
    def refused(self, job_id: str) -> list[tuple[WorkloadSpec, str]]:
        """Specs the provider cannot run, each with the field its `check()` must name."""

    @abstractmethod
    def unknown_handle(self) -> Handle:
        """A well-formed handle of a workload the network has never heard of."""

    @abstractmethod
    async def held(self, job_id: str) -> list[str]:
        """What the network still holds (or bills) for `job_id`: containers and volumes,
        open deployments and leases, agreements and activities, described in words. Empty
        once the job's workload was cancelled and released."""


def short_spec_fields(job_id: str) -> dict[str, object]:
    """Small resources every provider accepts; harnesses start their specs from these."""
    return {
        "job_id": job_id,
        "cpu_millicores": 500,
        "memory_bytes": 64 * 2**20,
        "storage_bytes": 2**30,
        "duration_seconds": 300,
        "document": {"id": job_id},
    }


class Driver:
    """Drives one workload like the engine: keeps the newest handle and the log cursor."""

    def __init__(self, adapter: Provider, handle: Handle, cursor: str | None = None) -> None:
        self.adapter = adapter
        self.handle = handle
        self.cursor = cursor
        self.lines: list[LogLine] = []
        self.last: WorkloadStatus | None = None
        self.seen: list[WorkloadStatus] = []

    async def step(self) -> WorkloadStatus:
        status = await self.adapter.status(self.handle)
        if status.handle is not None:
            self.handle = status.handle
        self.last = status
        self.seen.append(status)
        return status

    async def read_logs(self) -> None:
        batch = await self.adapter.logs(self.handle, self.cursor)
        self.lines.extend(batch.lines)
        self.cursor = batch.cursor

    async def until(
        self, states: tuple[WorkloadState, ...], timeout: float, *, logs: bool = False
    ) -> WorkloadStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = await self.step()
            if logs:
                await self.read_logs()
            if status.state in states:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"still {status} after {timeout} s (handle {self.handle})")
            async with asyncio.timeout(timeout):
                await self.adapter.watch(self.handle, 0.3)

    async def drain_logs(self, timeout: float = 10.0) -> None:
        """Read until a read brings nothing new (logs may trail the end by a moment)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 2 and time.monotonic() < deadline:
            before = len(self.lines)
            await self.read_logs()
            quiet = quiet + 1 if len(self.lines) == before else 0
            await asyncio.sleep(0.2)
