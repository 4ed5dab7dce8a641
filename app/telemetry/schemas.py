"""Logs and metrics in the contract's shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.envelope import Timestamp

MAX_LOG_LINES = 10_000
MAX_METRIC_POINTS = 2_000

PERIODS = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
RESOLUTIONS = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "1h": timedelta(hours=1)}


class LogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tail: int | None = Field(
        default=None,
        ge=1,
        le=MAX_LOG_LINES,
        description=f"The last N lines (without it: the last {MAX_LOG_LINES}, or with "
        "follow, every line).",
    )
    since: datetime | None = Field(default=None, description="Lines at or after this time.")
    follow: bool = Field(
        default=False,
        description="Then stream new lines as Server-Sent Events until the job ends.",
    )
    token: str | None = Field(default=None, description="A stream token instead of a Bearer key.")
    lastEventId: str | None = Field(
        default=None, description="Resume after this line (as the Last-Event-ID header)."
    )

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class LogEntry(BaseModel):
    seq: int
    timestamp: Timestamp
    line: str
    stream: str


class Logs(BaseModel):
    logs: list[LogEntry]


class MetricQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: Literal["1h", "6h", "24h", "7d"] = "1h"
    resolution: Literal["1m", "5m", "1h"] = "1m"

    @model_validator(mode="after")
    def _bounded(self) -> MetricQuery:
        points = PERIODS[self.period] / RESOLUTIONS[self.resolution]
        if points > MAX_METRIC_POINTS:
            raise ValueError(
                f"{self.period} at {self.resolution} is {int(points)} points; the most is "
                f"{MAX_METRIC_POINTS}: choose a coarser resolution"
            )
        if RESOLUTIONS[self.resolution] > PERIODS[self.period]:
            raise ValueError("the resolution must not be longer than the period")
        return self


class Point(BaseModel):
    timestamp: datetime
    value: float


class Network(BaseModel):
    rx: list[Point]
    tx: list[Point]


class Metrics(BaseModel):
    cpu: list[Point] = Field(description="Average CPU use in millicores.")
    memory: list[Point] = Field(description="Average memory use in bytes.")
    network: Network = Field(description="Bytes received and sent in each bucket.")
