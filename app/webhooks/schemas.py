"""Webhook endpoints and deliveries in the API's camelCase shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.envelope import Timestamp
from app.webhooks import signing

EVENT_TYPES = (
    "job.created",
    "job.scheduled",
    "job.started",
    "job.completed",
    "job.failed",
    "job.cancelled",
    "job.progress",
)
EventName = Literal[
    "job.created",
    "job.scheduled",
    "job.started",
    "job.completed",
    "job.failed",
    "job.cancelled",
    "job.progress",
    "*",
]


class _Input(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
    )


def _unique(events: list[str]) -> list[str]:
    return list(dict.fromkeys(events))


def _secret_form(value: str) -> str:
    problem = signing.secret_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Events = Annotated[
    list[EventName], Field(min_length=1, max_length=len(EVENT_TYPES) + 1), AfterValidator(_unique)
]
Secret = Annotated[
    str,
    AfterValidator(_secret_form),
    Field(
        min_length=signing.PLAIN_MIN_LENGTH,
        max_length=signing.PLAIN_MAX_LENGTH,
        description="Your own secret of 16 to 256 printable characters (signs with its UTF-8"
        " bytes), or whsec_ + base64 of 24-64 bytes; a whsec_ one is generated when omitted.",
    ),
]
URL = Annotated[str, Field(max_length=2048, description="Where deliveries are POSTed.")]


class EndpointCreate(_Input):
    url: URL
    events: Events
    secret: Secret | None = None
    description: str | None = Field(default=None, max_length=500)


class EndpointUpdate(_Input):
    url: URL | None = None
    events: Events | None = None
    active: bool | None = None
    description: str | None = Field(default=None, max_length=500)


class SecretRotation(_Input):
    secret: Secret | None = None


class _Output(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Endpoint(_Output):
    id: str
    url: str
    description: str | None
    events: list[str]
    active: bool
    disabled_reason: str | None = Field(description="Why the gateway disabled it, if it did.")
    failing_since: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class EndpointWithSecret(Endpoint):
    secret: str = Field(description="Shown when created or rotated, never in listings.")


class Attempt(_Output):
    attempted_at: Timestamp
    status_code: int | None
    error: str | None
    duration_ms: int


class Delivery(_Output):
    id: str
    event_type: str
    job_id: str | None
    status: Literal["pending", "succeeded", "failed"]
    attempts: list[Attempt]
    next_attempt_at: Timestamp | None
    created_at: Timestamp


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=100_000)
    limit: int = Field(default=20, ge=1, le=100)


class DeliveryQuery(ListQuery):
    status: Literal["pending", "succeeded", "failed"] | None = None
