"""Acme: a plugin adapter as a third party would ship it, in its own package.

It registers under the `cortex_gateway.providers` entry point group (see the dist-info beside
it), declares its options (read by the gateway from CORTEX_ACME_*), and passes the conformance
suite shipped in `providers.conformance`. Its "network" lives in this process: workloads
print the lines listed in their ACME_LINES variable, one every ACME_PAUSE seconds, then exit
with ACME_EXIT (or run for ACME_SECONDS).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from pydantic import Field

from providers import (
    Capabilities,
    FailureReason,
    Handle,
    HandleNotFound,
    Health,
    LogBatch,
    LogLine,
    MetricSample,
    Provider,
    Quote,
    Unavailable,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)
from providers.options import ProviderOptions

STOPPED_EXIT_CODE = 143


@dataclass
class Workload:
    job_id: str
    lines: list[str]
    exit_code: int
    pause: float
    runs_for: float
    started: float
    stopped_at: float | None = None

    def printed(self, now: float) -> list[str]:
        end = self.stopped_at or now
        return [line for i, line in enumerate(self.lines) if self.started + i * self.pause <= end]

    def ended(self, now: float) -> bool:
        return self.stopped_at is not None or now >= self.started + self.runs_for


# The networks reachable from this process, by endpoint.
NETWORKS: dict[str, dict[str, Workload]] = {}


class AcmeOptions(ProviderOptions):
    endpoint: str = Field(default="acme://default", description="which Acme network")
    usd_per_hour: float = Field(default=0.1, ge=0, description="the flat price")
    start_seconds: float = Field(default=0.05, ge=0, description="how long a start takes")


class AcmeProvider(Provider):
    name = "acme"
    options_model = AcmeOptions
    capabilities: ClassVar[Capabilities] = Capabilities(volumes=False, pricing="flat")

    def __init__(
        self,
        *,
        endpoint: str = "acme://default",
        usd_per_hour: float = 0.1,
        start_seconds: float = 0.05,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.usd_per_hour = usd_per_hour
        self.start_seconds = start_seconds

    def _network(self) -> dict[str, Workload]:
        network = NETWORKS.get(self.endpoint)
        if network is None:
            raise Unavailable(f"acme: no network answers at {self.endpoint}")
        return network

    def _workload(self, handle: Handle) -> Workload:
        workload = self._network().get(handle["job"])
        if workload is None:
            raise HandleNotFound(f"acme: no workload {handle['job']}")
        return workload

    async def health(self) -> Health:
        if self.endpoint not in NETWORKS:
            return Health(False, f"no Acme network answers at {self.endpoint}")
        return Health(True, detail={"endpoint": self.endpoint})

    async def quote(self, spec: WorkloadSpec) -> Quote:
        return Quote(usd_per_hour=float(self.usd_per_hour))

    async def submit(self, spec: WorkloadSpec) -> Handle:
        network = self._network()
        if spec.job_id not in network:  # submitted again after a crash: the same workload
            lines = json.loads(spec.env.get("ACME_LINES", "[]"))
            pause = float(spec.env.get("ACME_PAUSE", "0"))
            network[spec.job_id] = Workload(
                spec.job_id,
                lines,
                int(spec.env.get("ACME_EXIT", "0")),
                pause,
                float(spec.env.get("ACME_SECONDS", max(len(lines) - 1, 0) * pause)),
                time.time() + self.start_seconds,
            )
        return {"job": spec.job_id}

    async def status(self, handle: Handle) -> WorkloadStatus:
        workload = self._workload(handle)
        now = time.time()
        started_at = datetime.fromtimestamp(workload.started, UTC)
        if now < workload.started:
            return WorkloadStatus(WorkloadState.STARTING)
        if not workload.ended(now):
            return WorkloadStatus(WorkloadState.RUNNING, started_at=started_at)
        code = STOPPED_EXIT_CODE if workload.stopped_at is not None else workload.exit_code
        return WorkloadStatus(
            WorkloadState.EXITED,
            exit_code=code,
            reason=FailureReason.EXIT_CODE if code else None,
            started_at=started_at,
        )

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        workload = self._workload(handle)
        now = time.time()
        done = int(cursor or 0)
        printed = workload.printed(now)
        lines = tuple(
            LogLine(datetime.fromtimestamp(workload.started, UTC) + timedelta(seconds=i), text)
            for i, text in enumerate(printed[done:], start=done)
        )
        return LogBatch(lines, str(len(printed)), complete=workload.ended(now))

    async def metrics(self, handle: Handle) -> MetricSample | None:
        workload = self._workload(handle)
        if workload.ended(time.time()):
            return None
        return MetricSample(datetime.now(UTC), cpu_millicores=1.0)

    async def cancel(self, handle: Handle) -> None:
        workload = self._workload(handle)
        if workload.stopped_at is None and not workload.ended(time.time()):
            workload.stopped_at = time.time()

    async def release(self, handle: Handle) -> None:
        self._network().pop(handle["job"], None)

    async def watch(self, handle: Handle, max_wait: float) -> None:
        await asyncio.sleep(min(max_wait, 0.05))
