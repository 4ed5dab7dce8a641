"""The gateway's request and response bodies, as the client reads and sends them.

The client's own copies of the server's models, so that it installs without the server:
attributes are snake_case (`job.results.exit_code`) and `model_dump(by_alias=True)` gives back
the API's JSON. tests/client/test_models.py compares every model here with the gateway's OpenAPI
document, field by field, so neither side gains a field alone.

They are deliberately looser than the server's: enumerations such as a job's status are plain
strings, fields this client does not know are kept rather than refused, and `JobSpec` checks
only types and required fields. An older client still reads a newer gateway's answers, and the
gateway alone decides what it accepts (which providers exist, which sizes it runs).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "Account",
    "AccountEvent",
    "AccountEvents",
    "Attempt",
    "Batch",
    "BatchSubmitted",
    "BatchSummary",
    "BudgetStatus",
    "Cost",
    "Delivery",
    "Endpoint",
    "EndpointWithSecret",
    "Gpu",
    "Job",
    "JobConfig",
    "JobEndpoint",
    "JobEvent",
    "JobEventEntry",
    "JobEvents",
    "JobSpec",
    "JobSummary",
    "LogEntry",
    "Logs",
    "Metrics",
    "NativeCost",
    "Network",
    "Pagination",
    "Point",
    "Port",
    "Provider",
    "ProviderCapabilities",
    "ProviderHealth",
    "ProviderPricing",
    "Quota",
    "QuoteCandidate",
    "QuoteComparison",
    "RateLimit",
    "Refusal",
    "Results",
    "StreamToken",
    "Template",
]


class _Model(BaseModel):
    # camelCase on the wire, snake_case attributes (either is accepted when building one).
    # Unknown fields are kept: a newer gateway's answer loses nothing in `model_dump`, and an
    # unknown field of a JobSpec goes to the gateway, which names it in its VALIDATION_ERROR.
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="allow")


# Job specifications


class Port(_Model):
    port: int
    expose: bool = False
    protocol: str = "tcp"


class Volume(_Model):
    """A named volume, created for the job (never a host path)."""

    name: str
    mount_path: str
    size: str | None = None
    read_only: bool = False


class Gpu(_Model):
    count: int = 1
    model: str | None = None
    min_vram: str | None = None


class JobConfig(_Model):
    """Everything in a job specification beyond the resources."""

    env: dict[str, str] = Field(default_factory=dict)
    ports: list[Port] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    command: list[str] | None = None
    args: list[str] | None = None
    gpu: Gpu | None = None
    providers: list[str] | None = None
    max_price_per_hour: float | None = None
    # The most the whole job may cost (USD); the gateway refuses or stops it beyond that.
    max_cost_usd: float | None = None


class JobSpec(JobConfig):
    """The body of POST /jobs. `provider` is any name the gateway knows, or "auto" to let it
    choose; the gateway checks it and every limit, and answers all the problems at once."""

    provider: str
    image: str
    cpu: int
    memory: str
    storage: str
    duration: int


# Jobs


class NativeCost(_Model):
    """The cost in the network's own denomination (Akash: uact), as decimal strings."""

    denom: str
    amount: str
    projected: str
    price: str
    unit: str


class Cost(_Model):
    current: float
    projected: float
    currency: str = "USD"
    # Absent, not null, for networks without a unit of their own (as the gateway sends it).
    native: NativeCost | None = Field(default=None, exclude_if=lambda value: value is None)


class Results(_Model):
    exit_code: int | None = None
    output_url: str | None = None
    reason: str | None = None
    message: str | None = None


class JobEvent(_Model):
    type: str
    timestamp: datetime
    message: str | None = None


class JobEndpoint(_Model):
    port: int
    url: str


class JobSummary(_Model):
    """A job as GET /jobs lists it."""

    id: str
    provider: str
    status: str
    image: str
    cpu: int
    memory: str
    storage: str
    duration: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    cost: Cost
    endpoints: list[JobEndpoint] = Field(default_factory=list)
    template_id: str | None = None
    batch_id: str | None = None
    # Percent done as the workload reported it, and what is happening now (the gateway's
    # words while the job waits, then the workload's): None when there is nothing to say.
    progress: int | None = None
    status_message: str | None = None


class Job(JobSummary):
    """A job with its configuration, results and events timeline."""

    config: JobConfig
    results: Results
    events: list[JobEvent]


# Logs, metrics, events and stream tokens


class LogEntry(_Model):
    seq: int
    timestamp: datetime
    line: str
    stream: str


class Logs(_Model):
    logs: list[LogEntry]


class Point(_Model):
    timestamp: datetime
    value: float


class Network(_Model):
    rx: list[Point]
    tx: list[Point]


class Metrics(_Model):
    cpu: list[Point]
    memory: list[Point]
    network: Network


class JobEventEntry(_Model):
    """One event of a job's timeline; `seq` is its position (the stream's event id)."""

    seq: int
    type: str
    timestamp: datetime
    message: str | None = None
    # `progress` events: {"progress", "statusMessage", "outputUrl"}.
    data: dict[str, Any] | None = None


class JobEvents(_Model):
    events: list[JobEventEntry]


class AccountEvent(_Model):
    """A status change of one of the account's jobs; `id` is the stream's event id."""

    id: str
    job_id: str
    type: str
    status: str
    provider: str
    timestamp: datetime
    message: str | None = None


class AccountEvents(_Model):
    events: list[AccountEvent]


class StreamToken(_Model):
    token: str
    expires_at: datetime

    @field_validator("expires_at", mode="before")
    @classmethod
    def _from_unix(cls, value: object) -> object:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        return value


# Webhooks


class Endpoint(_Model):
    id: str
    url: str
    description: str | None
    events: list[str]
    active: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(Endpoint):
    secret: str


class Attempt(_Model):
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class Delivery(_Model):
    id: str
    event_type: str
    job_id: str | None
    status: str
    attempts: list[Attempt]
    next_attempt_at: datetime | None
    created_at: datetime


# Providers and quotes


class ProviderHealth(_Model):
    status: str
    reason: str | None = None


class ProviderCapabilities(_Model):
    ports: bool
    command_override: bool
    volumes: bool
    gpus: bool
    min_duration: int
    max_duration: int | None


class ProviderPricing(_Model):
    description: str


class Provider(_Model):
    name: str
    health: ProviderHealth
    capabilities: ProviderCapabilities | None
    pricing: ProviderPricing | None


class Refusal(_Model):
    field: str
    message: str


class QuoteCandidate(_Model):
    provider: str
    verdict: str
    reason: str
    usd_per_hour: float | None = None
    native_amount: float | None = None
    native_unit: str | None = None
    refusals: list[Refusal] = Field(default_factory=list)


class QuoteComparison(_Model):
    chosen: str | None
    usd_per_hour: float | None
    candidates: list[QuoteCandidate]


# Templates and batches


class Template(_Model):
    id: str
    name: str
    description: str | None
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class BatchSubmitted(_Model):
    batch_id: str
    job_ids: list[str]
    status: str = "submitted"
    concurrency: int


class BatchSummary(_Model):
    """A batch as GET /jobs/batch lists it; `counts` maps each job status to how many."""

    id: str
    status: str
    concurrency: int
    total: int
    counts: dict[str, int]
    created_at: datetime
    cancelled_at: datetime | None


class Batch(BatchSummary):
    """A batch with its jobs' ids."""

    job_ids: list[str]


# The account


class RateLimit(_Model):
    """Per API key; None: unlimited."""

    requests_per_second: float | None
    burst: int | None


class Quota(_Model):
    """`name` is the one a QUOTA_EXCEEDED error gives; `limit` None: unlimited; `current`
    None for a quota checked per request (the size of a batch)."""

    name: str
    limit: int | None
    current: int | None


class BudgetStatus(_Model):
    """USD per `period` (day, month: UTC calendar; total), spent and left in the current one."""

    usd: float
    period: str
    spent: float
    left: float


class Account(_Model):
    """The calling key's account: its limits, what it uses now and its budget."""

    id: str
    name: str
    rate_limit: RateLimit
    quotas: list[Quota]
    max_engine_slots: int | None
    budget: BudgetStatus | None
    allowed_providers: list[str] | None


# Listings


class Pagination(_Model):
    """`meta.pagination` of a listing; `next_cursor` only where the listing has cursors."""

    total: int
    page: int
    limit: int
    pages: int
    next_cursor: str | None = None
