"""Query parameters and bodies of the stream routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from app.envelope import Timestamp


class JobEventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    follow: bool = Field(default=False, description="Stream events live (Server-Sent Events).")
    token: str | None = Field(default=None, description="A stream token instead of a Bearer key.")
    lastEventId: str | None = Field(
        default=None, description="Resume after this event (as the Last-Event-ID header)."
    )


class AccountEventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    follow: bool = Field(default=False, description="Stream status changes live.")
    limit: int = Field(default=100, ge=1, le=1000, description="Without follow: how many.")
    token: str | None = Field(
        default=None, description="An account stream token instead of a Bearer key."
    )
    lastEventId: str | None = Field(default=None)


class StreamToken(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    token: str
    expires_at: Timestamp

    @field_validator("expires_at", mode="before")
    @classmethod
    def _from_unix(cls, value: object) -> object:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        return value


class JobEventEntry(BaseModel):
    """One event of a job's timeline; `seq` is its position (the stream's event id)."""

    seq: int
    type: str
    timestamp: Timestamp
    message: str | None = None
    data: dict[str, Any] | None = Field(
        default=None,
        description="What some events carry besides their message: `progress` events the job's "
        "`progress`, `statusMessage` and `outputUrl`; `logs_truncated` the dropped counts.",
    )


class JobEvents(BaseModel):
    events: list[JobEventEntry]


class AccountEvent(BaseModel):
    """A status change of one of the account's jobs; `id` is the stream's event id."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    job_id: str
    type: str
    status: str
    provider: str
    timestamp: Timestamp
    message: str | None = None


class AccountEvents(BaseModel):
    events: list[AccountEvent]
