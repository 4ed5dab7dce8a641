"""Logs and metrics in the contract's shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.envelope import Timestamp

MAX_LOG_LINES = 10_000
# The most points one series of GET /jobs/{id}/metrics answers: a week at 5 minutes. A finer
# resolution than a period allows is coarsened to period / MAX_METRIC_POINTS (7d at 1m -> 5m).
MAX_METRIC_POINTS = 2_016

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

    period: Literal["1h", "6h", "24h", "7d"] = Field(
        default="1h", description="How far back from now the series reach."
    )
    resolution: Literal["1m", "5m", "1h"] = Field(
        default="1m",
        description=f"The width of each point; coarsened where the period would have more "
        f"than {MAX_METRIC_POINTS} points (7d at 1m answers 5-minute points; "
        "meta.resolution says which).",
    )

    @property
    def bucket(self) -> timedelta:
        """The width of a point: the resolution asked for, or coarser to stay in bounds."""
        return max(RESOLUTIONS[self.resolution], PERIODS[self.period] / MAX_METRIC_POINTS)


def duration_text(width: timedelta) -> str:
    """timedelta(minutes=5) -> "5m" (whole hours as "h", whole minutes as "m", else "s")."""
    seconds = int(width.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


class MetricsMeta(BaseModel):
    """`meta` of GET /jobs/{id}/metrics: the window and the width of the points answered."""

    period: str = Field(description="The period asked for (or the default).")
    resolution: str = Field(
        description="The width of each point answered: the resolution asked for, or coarser "
        f"where it would give more than {MAX_METRIC_POINTS} points."
    )


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
