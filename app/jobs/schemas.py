"""What the Jobs API accepts and answers, in the contract's camelCase shapes.

The same models validate requests and generate the OpenAPI document.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from app import pagination
from app.envelope import Timestamp
from app.jobs.lifecycle import JobStatus
from app.quantities import format_bytes, parse_bytes
from app.validation import Integer
from providers import available_providers
from providers.registry import AUTO

SORT_FIELDS = ("createdAt", "startedAt", "endedAt", "status", "provider")
MAX_CPU_MILLICORES = 256_000
MAX_DURATION_SECONDS = 30 * 24 * 3600
MIN_MEMORY_BYTES, MAX_MEMORY_BYTES = 6 * 2**20, 2**40
MIN_STORAGE_BYTES, MAX_STORAGE_BYTES = 2**20, 64 * 2**40
MAX_ENV_VARS = 256
MAX_ENV_VALUE_LENGTH = 32_768
MAX_PORTS = 32
MAX_VOLUMES = 16
MAX_ARGV_ITEMS = 256
MAX_ARGV_ITEM_LENGTH = 8_192

# The distribution/reference grammar Docker uses: [host[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
)
_IMAGE_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VOLUME_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _image_reference(value: str) -> str:
    name = value.split("@", 1)[0]
    if len(name) > 255 or not _IMAGE_REFERENCE.match(value):
        raise ValueError(
            "must be a container image reference such as nginx:alpine, "
            "ghcr.io/org/app:1.2 or repo@sha256:<digest>"
        )
    return value


def _quantity_between(low: int, high: int) -> Any:
    def check(value: str) -> str:
        size = parse_bytes(value)
        if not low <= size <= high:
            raise ValueError(f"must be between {format_bytes(low)} and {format_bytes(high)}")
        return value

    return AfterValidator(check)


def _provider_name(value: str) -> str:
    names = available_providers()
    if value not in names and value != AUTO:
        raise ValueError(
            f"unknown provider {value!r}; registered providers: {', '.join(names)} "
            f"(or {AUTO}: the cheapest that can run it)"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
    )


ArgvItem = Annotated[str, StringConstraints(max_length=MAX_ARGV_ITEM_LENGTH)]
Quantity = Annotated[str, StringConstraints(max_length=32)]


class Port(_Strict):
    port: Integer = Field(ge=1, le=65535, description="Container port.")
    expose: bool = Field(default=False, description="Publish the port outside the workload.")
    protocol: Literal["tcp", "udp"] = "tcp"


class Volume(_Strict):
    """A named volume, created for the job (never a host path)."""

    name: str = Field(description="Lowercase letters, digits and dashes, at most 63.")
    mount_path: str = Field(max_length=4096, description="Absolute path inside the container.")
    size: Annotated[Quantity, _quantity_between(2**20, MAX_STORAGE_BYTES)] | None = None
    read_only: bool = False

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _VOLUME_NAME.match(value):
            raise ValueError("must be 1-63 lowercase letters, digits or dashes")
        return value

    @field_validator("mount_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        parts = value.split("/")
        if not value.startswith("/") or value == "/" or ".." in parts or "\x00" in value:
            raise ValueError("must be an absolute path below / without '..'")
        return value


ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]


class Gpu(_Strict):
    """GPUs the job needs. Providers that cannot provide GPUs refuse such a job with a 400."""

    count: Integer = Field(default=1, ge=1, le=16, description="GPUs per job.")
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="e.g. NVIDIA RTX 4090; any if unset.",
    )
    min_vram: Annotated[Quantity, _quantity_between(2**20, 2**40)] | None = Field(
        default=None, description="Memory each GPU must have, e.g. 24Gi."
    )


class JobConfig(_Strict):
    """Everything in a job specification beyond the resources."""

    env: dict[str, str] = Field(default_factory=dict, max_length=MAX_ENV_VARS)
    ports: list[Port] = Field(default_factory=list, max_length=MAX_PORTS)
    volumes: list[Volume] = Field(default_factory=list, max_length=MAX_VOLUMES)
    command: list[ArgvItem] | None = Field(default=None, min_length=1, max_length=MAX_ARGV_ITEMS)
    args: list[ArgvItem] | None = Field(default=None, max_length=MAX_ARGV_ITEMS)
    gpu: Gpu | None = None
    providers: list[ProviderName] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description='With provider "auto": the providers it may be placed on (default: all).',
    )
    max_price_per_hour: float | None = Field(
        default=None,
        gt=0,
        description='With provider "auto": the most it may cost, in USD per hour.',
    )
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        description="The most the whole job may cost, in USD: a job whose projected cost is "
        "over it is refused (402 BUDGET_EXCEEDED), and one whose accrued cost reaches it is "
        "stopped and fails with reason budget_exceeded.",
    )

    @field_validator("env")
    @classmethod
    def _valid_env(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if len(text) > MAX_ENV_VALUE_LENGTH:
                raise ValueError(f"the value of {name} is over {MAX_ENV_VALUE_LENGTH} characters")
        return value

    @field_validator("ports")
    @classmethod
    def _unique_ports(cls, value: list[Port]) -> list[Port]:
        seen = [(port.port, port.protocol) for port in value]
        if len(seen) != len(set(seen)):
            raise ValueError("each port and protocol may appear only once")
        return value

    @field_validator("volumes")
    @classmethod
    def _unique_volumes(cls, value: list[Volume]) -> list[Volume]:
        if len({volume.name for volume in value}) != len(value):
            raise ValueError("volume names must be unique")
        if len({volume.mount_path for volume in value}) != len(value):
            raise ValueError("each mountPath may be used by one volume only")
        return value


def with_auto_candidates(data: Any) -> Any:
    """An auto job without a `providers` list may go to any provider this gateway knows; the
    list is stored, so the job shows which it could be placed on."""
    if isinstance(data, dict) and data.get("provider") == AUTO and "providers" not in data:
        return {**data, "providers": list(available_providers())}
    return data


class JobSpec(JobConfig):
    """The body of POST /jobs."""

    provider: Annotated[str, AfterValidator(_provider_name)] = Field(
        description="Provider network: local, akash, render, golem, or a plugin's name; "
        '"auto": the cheapest healthy provider that can run the job, chosen by the engine.'
    )
    image: Annotated[str, AfterValidator(_image_reference)] = Field(
        description="Container image reference, e.g. nginx:alpine."
    )
    cpu: Integer = Field(
        ge=1, le=MAX_CPU_MILLICORES, description="CPU in millicores (1000 = 1 CPU)."
    )
    memory: Annotated[Quantity, _quantity_between(MIN_MEMORY_BYTES, MAX_MEMORY_BYTES)] = Field(
        description="Memory, e.g. 512Mi or 2Gi."
    )
    storage: Annotated[Quantity, _quantity_between(MIN_STORAGE_BYTES, MAX_STORAGE_BYTES)] = Field(
        description="Ephemeral storage, e.g. 1Gi."
    )
    duration: Integer = Field(
        ge=1, le=MAX_DURATION_SECONDS, description="Maximum run time in seconds."
    )

    @model_validator(mode="before")
    @classmethod
    def _auto_candidates(cls, data: Any) -> Any:
        return with_auto_candidates(data)

    @model_validator(mode="after")
    def _placement_only_with_auto(self) -> JobSpec:
        if self.provider != AUTO and self.providers is not None:
            raise ValueError(f'"providers" goes with "provider": "{AUTO}" only')
        if self.provider != AUTO and self.max_price_per_hour is not None:
            raise ValueError(f'"maxPricePerHour" goes with "provider": "{AUTO}" only')
        if self.providers is not None and len(set(self.providers)) != len(self.providers):
            raise ValueError('"providers" lists each provider once')
        return self

    def config(self) -> JobConfig:
        return JobConfig.model_validate(
            self.model_dump(include=set(JobConfig.model_fields), by_alias=False),
            strict=False,
        )


class NativeCost(BaseModel):
    """The cost in the network's own denomination (Akash: uact), as decimal strings."""

    denom: str = Field(description="e.g. uact")
    amount: str = Field(description="Accrued so far.")
    projected: str = Field(description="For the whole duration.")
    price: str = Field(description="The accepted price per unit, as the network states it.")
    unit: str = Field(description="What the price is per, e.g. block.")


class Cost(BaseModel):
    current: float
    projected: float
    currency: Literal["USD"] = "USD"
    # Absent, not null, for networks without a unit of their own (the seed's shape).
    native: NativeCost | None = Field(default=None, exclude_if=lambda value: value is None)


class Results(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    exit_code: int | None = None
    output_url: str | None = None
    reason: str | None = Field(
        default=None,
        description="Why a job failed: exit_code, timeout, oom, image_pull, provider_error, "
        "lost, rejected or budget_exceeded (stopped at its account's, key's or own "
        "spending limit); or that its network never started it: no_bids (Akash), no_offers "
        "(Golem), not_assigned (Render).",
    )
    message: str | None = None


class JobEvent(BaseModel):
    type: str
    timestamp: Timestamp
    message: str | None = None


class JobEndpoint(BaseModel):
    port: int = Field(description="The container port.")
    url: str = Field(description="Where it answers while the job runs.")


class JobSummary(BaseModel):
    """A job as GET /jobs lists it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str = Field(examples=["job_1a2b3c4d5e6f7a8b"])
    provider: str
    status: JobStatus
    image: str
    cpu: int
    memory: str
    storage: str
    duration: int
    created_at: Timestamp
    started_at: Timestamp | None
    ended_at: Timestamp | None
    cost: Cost
    endpoints: list[JobEndpoint] = Field(
        default_factory=list, description="Exposed ports and their URLs while the job runs."
    )
    template_id: str | None = Field(
        default=None, description="The template the job was created from, if any."
    )
    batch_id: str | None = Field(default=None, description="The batch it was submitted in, if any.")
    progress: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Percent done, as the workload last reported it (a `::cortex` line); "
        "null until it does.",
    )
    status_message: str | None = Field(
        default=None,
        max_length=200,
        description="What is happening now: the gateway's words while the job waits "
        "(`waiting for bids: 3 so far, cheapest 950 uact/block`, `pulling image`), then the "
        "workload's own (a `::cortex` line); null when there is nothing to say.",
    )


class Job(JobSummary):
    """A job with its configuration, results and events timeline."""

    config: JobConfig
    results: Results
    events: list[JobEvent]


class JobListQuery(BaseModel):
    """Query parameters of GET /jobs."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: list[JobStatus] | None = Field(
        default=None, description="One status or several, comma-separated."
    )
    provider: list[Annotated[str, AfterValidator(_provider_name)]] | None = Field(
        default=None, description="One provider or several, comma-separated."
    )
    from_: datetime | None = Field(default=None, alias="from", description="Created at or after.")
    to: datetime | None = Field(default=None, description="Created before.")
    batch_id: str | None = Field(
        default=None, alias="batchId", max_length=64, description="Only the jobs of this batch."
    )
    page: int = Field(default=1, ge=1, le=1_000_000)
    limit: int = Field(default=20, ge=1, le=100)
    sort: str = Field(
        default="createdAt:desc",
        description="field:asc|desc over createdAt, startedAt, endedAt, status, provider.",
    )
    cursor: str | None = Field(
        default=None,
        max_length=2048,
        description="Opaque: meta.pagination.nextCursor of the previous page.",
    )

    @field_validator("sort")
    @classmethod
    def _known_sort(cls, value: str) -> str:
        pagination.parse_sort(value, SORT_FIELDS)
        return value

    @field_validator("from_", "to")
    @classmethod
    def _utc_when_naive(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobListQuery:
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError("'from' must not be later than 'to'")
        if self.cursor is not None and "page" in self.model_fields_set:
            raise ValueError("give either 'page' or 'cursor', not both")
        return self
