"""The adapter contract: one class per network, registered under a lowercase name.

Capability (`capabilities`, `check`, `quote`, `health`) is kept apart from lifecycle (`submit`,
`status`, `logs`, `metrics`, `cancel`, `release`). Lifecycle calls are short and resumable:
the engine may die between any two of them, so everything an adapter needs to continue lives
in the handle it returned, which the engine stores on the job.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from providers.options import ProviderOptions
from providers.types import (
    Capabilities,
    Handle,
    Health,
    LogBatch,
    MetricSample,
    Quote,
    Refusal,
    WorkloadSpec,
    WorkloadStatus,
)

# Where a workload leaves the files it produced, collected when it ends.
OUTPUT_PATH = "/cortex/output"


class Provider(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    # What an operator may set for this adapter, read from CORTEX_<NAME>_<FIELD> by the
    # gateway and passed to the constructor as keywords (an adapter with none keeps this).
    options_model: ClassVar[type[ProviderOptions]] = ProviderOptions

    # Whether `output()` can fetch the files a workload left in /cortex/output/.
    collects_outputs: ClassVar[bool] = False
    # Whether `upload_output()` can have the network itself send them to a URL (networks
    # that cannot be read from but can push, like Golem's ExeScript `transfer`).
    uploads_outputs: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = options

    async def aclose(self) -> None:  # noqa: B027 - a hook with nothing to do by default
        """Release connections the adapter holds (the engine calls this on shutdown)."""

    def check(self, spec: WorkloadSpec) -> list[Refusal]:
        """Every reason this network cannot run `spec` (empty when it can). Adapters extend
        the capability checks with their own limits."""
        caps = self.capabilities
        refusals = []
        if not caps.exposed_ports and any(port.expose for port in spec.ports):
            refusals.append(Refusal("ports", f"{self.name} cannot expose ports"))
        if not caps.command_override and (spec.command is not None or spec.args is not None):
            field = "command" if spec.command is not None else "args"
            refusals.append(
                Refusal(
                    field, f"{self.name} runs the image's own entrypoint; it cannot override it"
                )
            )
        if not caps.volumes and spec.volumes:
            refusals.append(Refusal("volumes", f"{self.name} cannot mount volumes"))
        if not caps.gpus and spec.gpu is not None:
            refusals.append(Refusal("gpu", f"{self.name} cannot provide GPUs"))
        if spec.duration_seconds < caps.min_duration_seconds:
            refusals.append(
                Refusal("duration", f"{self.name} needs at least {caps.min_duration_seconds} s")
            )
        if caps.max_duration_seconds and spec.duration_seconds > caps.max_duration_seconds:
            refusals.append(
                Refusal("duration", f"{self.name} allows at most {caps.max_duration_seconds} s")
            )
        return refusals

    @abstractmethod
    async def health(self) -> Health:
        """Whether the network is reachable and configured, and why not."""

    @abstractmethod
    async def quote(self, spec: WorkloadSpec) -> Quote:
        """The price of running `spec`; raises Rejected when the network cannot run it."""

    @abstractmethod
    async def submit(self, spec: WorkloadSpec) -> Handle:
        """Start the workload (or the network's first step towards it) and return its handle.

        Raises Unavailable (retry later), Rejected, or ImagePullFailed."""

    @abstractmethod
    async def status(self, handle: Handle) -> WorkloadStatus:
        """Where the workload is. May move placement on (accept a bid, create a lease, start
        an activity) and then returns the new handle in `WorkloadStatus.handle`.

        Raises HandleNotFound when the network no longer knows the workload."""

    @abstractmethod
    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        """Log lines after `cursor` (None: from the start), and the cursor that follows."""

    @abstractmethod
    async def metrics(self, handle: Handle) -> MetricSample | None:
        """One resource sample, or None when the workload is not running."""

    @abstractmethod
    async def cancel(self, handle: Handle) -> None:
        """Stop the workload. Returns once the network confirms it stopped; idempotent."""

    @abstractmethod
    async def release(self, handle: Handle) -> None:
        """Free whatever the ended workload still holds (container, lease, agreement,
        volumes) so that nothing keeps running or billing. Idempotent."""

    async def output(self, handle: Handle, write: Callable[[bytes], Awaitable[None]]) -> bool:
        """Optional, for adapters with `collects_outputs`: hand over the files the ended
        workload left in OUTPUT_PATH, as a tar stream (its entries under `output/`) passed
        chunk by chunk to `write`, which may raise to stop the transfer. Returns False when
        there is no such directory. The engine calls it after the last logs and before
        `release`."""
        return False

    async def upload_output(self, handle: Handle, url: str) -> bool:
        """Optional, for adapters with `uploads_outputs`: have the network PUT a tar of the
        ended workload's OUTPUT_PATH (entries under `output/`, as `output()` hands over) to
        `url`, and return once it did (True) or when there is nothing to send (False: the
        workload never ran, or the spec did not ask for it, see WorkloadSpec.upload_output).
        Raises Rejected with the network's words when the upload failed, HandleNotFound when
        the workload is gone, Unavailable when the network cannot be asked now. The engine
        calls it where it would call `output()`."""
        return False

    async def watch(self, handle: Handle, max_wait: float) -> None:
        """Wait until the workload may have changed, at most `max_wait` seconds. Networks that
        can push (a Docker wait, an event stream) return early; the default just sleeps."""
        await asyncio.sleep(max_wait)
