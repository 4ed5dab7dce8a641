"""The values exchanged between the engine and provider adapters.

They describe any network: a Docker daemon, Akash (deployment -> bids -> lease), Golem (demand
-> agreement -> activity) or Render (BATCH job -> job runs). Nothing here knows HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# What an adapter keeps about a workload it started (container id, dseq, agreement id...).
# The engine stores it on the job as JSON and hands it back on every later call.
Handle = dict[str, Any]


@dataclass(frozen=True)
class PortSpec:
    port: int
    expose: bool = False
    protocol: str = "tcp"


@dataclass(frozen=True)
class VolumeSpec:
    name: str
    mount_path: str
    size_bytes: int | None = None
    read_only: bool = False


@dataclass(frozen=True)
class GpuSpec:
    """GPUs a workload needs: how many, optionally which model and how much memory each."""

    count: int = 1
    model: str | None = None
    min_vram_bytes: int | None = None


@dataclass(frozen=True)
class WorkloadSpec:
    """A job as a provider sees it: resources in plain units, the rest as submitted."""

    job_id: str
    image: str
    cpu_millicores: int
    memory_bytes: int
    storage_bytes: int
    duration_seconds: int
    env: dict[str, str] = field(default_factory=dict)
    ports: tuple[PortSpec, ...] = ()
    volumes: tuple[VolumeSpec, ...] = ()
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    gpu: GpuSpec | None = None
    # The full job document as the API shows it; placed at /cortex/spec/job.json where possible.
    document: dict[str, Any] = field(default_factory=dict)
    # The gateway will ask for /cortex/output/ by upload when the workload ends (it has a
    # public URL to receive it): an adapter that must prepare at start does so (Golem
    # declares a volume there, since only volumes can be transferred).
    upload_output: bool = False


@dataclass(frozen=True)
class Capabilities:
    """What a network can run; a spec asking for more is refused at submission."""

    exposed_ports: bool = True
    command_override: bool = True
    volumes: bool = True
    gpus: bool = False
    min_duration_seconds: int = 1
    max_duration_seconds: int | None = None
    # How the network prices a job, in a sentence for the providers API.
    pricing: str = ""


@dataclass(frozen=True)
class Refusal:
    """One reason a provider cannot run a spec, naming the field."""

    field: str
    message: str


@dataclass(frozen=True)
class Health:
    healthy: bool
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # False: the adapter lacks the settings (an API key...) to work at all.
    configured: bool = True


@dataclass(frozen=True)
class NativePrice:
    """A price in the network's own denomination, as the network states it: `amount` (a
    decimal string, exact) of `denom` per `unit`, with `units_per_hour` to make it a rate
    (Akash: uact per block, 590.4 blocks an hour; Golem: GLM per hour, 1)."""

    denom: str
    amount: str
    unit: str
    units_per_hour: float


@dataclass(frozen=True)
class Quote:
    """The price of running a spec: USD per hour, and the network's own unit."""

    usd_per_hour: float
    native_amount: float | None = None
    native_unit: str | None = None
    native: NativePrice | None = None


class WorkloadState(StrEnum):
    PENDING = "pending"  # accepted by the network, not placed yet (waiting for bids, negotiating)
    STARTING = "starting"  # placed; image being pulled or deployed
    RUNNING = "running"
    EXITED = "exited"  # the workload ended by itself; exit_code says how
    FAILED = "failed"  # the network gave up on it; reason says why
    UNKNOWN = "unknown"  # the network answered something unmapped; try again later


class FailureReason(StrEnum):
    EXIT_CODE = "exit_code"
    TIMEOUT = "timeout"
    OOM = "oom"
    IMAGE_PULL = "image_pull"
    PROVIDER_ERROR = "provider_error"
    LOST = "lost"
    REJECTED = "rejected"
    # The network found no machine for it in time (Render: no node assigned): it never started.
    NOT_ASSIGNED = "not_assigned"
    # No provider bid on it before the bid timeout (Akash): it never started.
    NO_BIDS = "no_bids"
    # No provider answered with an acceptable offer in time (Golem): it never started.
    NO_OFFERS = "no_offers"
    # The network stayed unavailable for the whole submit timeout: it never started.
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    # The gateway stopped it: its account, its key or the job itself reached a spending limit.
    BUDGET_EXCEEDED = "budget_exceeded"


@dataclass(frozen=True)
class Endpoint:
    port: int
    url: str


@dataclass(frozen=True)
class WorkloadStatus:
    state: WorkloadState
    exit_code: int | None = None
    reason: FailureReason | None = None
    message: str | None = None
    endpoints: tuple[Endpoint, ...] = ()
    started_at: datetime | None = None
    # A replacement handle when the adapter moved the workload on (a bid accepted, a lease made).
    handle: Handle | None = None
    # What happened on the network since the last call, for the job's timeline.
    notes: tuple[str, ...] = ()
    # The price the network actually charges, once it is known (an accepted bid), when it
    # differs from the quote taken at submission.
    price: Quote | None = None
    # While the workload waits to run (PENDING, STARTING): what the network is doing about it,
    # in a short sentence built from the network's own answers ("waiting for bids: 3 so far,
    # cheapest 950 uact/block", "pulling image"). The gateway shows it as the job's
    # statusMessage until the workload runs; None: nothing to say.
    waiting: str | None = None


@dataclass(frozen=True)
class LogLine:
    timestamp: datetime
    line: str
    stream: str = "stdout"


@dataclass(frozen=True)
class LogBatch:
    """New lines, and where the next read starts: an opaque cursor the adapter owns. The
    engine stores lines and cursor together, so each line is kept exactly once."""

    lines: tuple[LogLine, ...]
    cursor: str | None
    # The adapter knows this read reached the end of what the workload has printed so far:
    # a final read of an ended workload needs no second look.
    complete: bool = False
    # Lines read but left out (not in `lines`) because the job's log is past its cap: only
    # counted. Set by the engine, never by an adapter.
    dropped_lines: int = 0
    dropped_bytes: int = 0


@dataclass(frozen=True)
class MetricSample:
    timestamp: datetime
    cpu_millicores: float | None = None
    memory_bytes: int | None = None
    network_rx_bytes: int | None = None
    network_tx_bytes: int | None = None
