"""A stored job as it crosses a module boundary: the row read once into typed attributes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping

from app.jobs.lifecycle import JobStatus

# A read of some columns only may leave these out; they then keep their defaults.
_NOT_IN_SUMMARIES = (
    "config",
    "results",
    "handle",
    "needs_release",
    "log_cursor",
    "log_seq",
    "log_bytes_stored",
    "log_lines_dropped",
    "log_bytes_dropped",
    "engine_owner",
    "batch_index",
    "submit_attempts",
    "submit_failing_since",
    "output_url",
    "progress_reported_at",
    "progress_unsent",
    "progress_events",
)


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    account_id: str
    provider: str  # a provider name, or "auto" while an auto job waits to be placed
    status: JobStatus
    image: str
    cpu: int
    memory: str
    storage: str
    duration: int  # seconds
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    cost_current: Decimal
    cost_projected: Decimal
    usd_per_hour: Decimal
    native_price: dict[str, Any] | None  # {"denom", "amount", "unit", "unitsPerHour"}
    endpoints: list[dict[str, Any]]  # [{"port", "url"}] while it runs
    template_id: str | None
    batch_id: str | None
    # What the workload reported (`::cortex` lines) or the gateway says while the job waits.
    progress: int | None = None
    status_message: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the JobConfig fields, camelCase
    results: dict[str, Any] = field(default_factory=dict)
    # The engine's columns: the adapter's handle, whether the workload still holds anything,
    # where the next log read starts, the last stored line's sequence, the engine driving it.
    handle: dict[str, Any] | None = None
    needs_release: bool = False
    log_cursor: str | None = None
    log_seq: int = 0
    log_bytes_stored: int = 0
    log_lines_dropped: int = 0
    log_bytes_dropped: int = 0
    engine_owner: str | None = None
    batch_index: int | None = None
    submit_attempts: int = 0
    submit_failing_since: datetime | None = None
    # The output URL the workload declared, and the progress event throttle's state.
    output_url: str | None = None
    progress_reported_at: datetime | None = None
    progress_unsent: bool = False
    progress_events: int = 0

    @classmethod
    def from_row(cls, row: RowMapping) -> JobRecord:
        # One pass over the row's own items: asking the row for each field by name costs a
        # key lookup in SQLAlchemy's result metadata per field (this runs for every listed job).
        values = {name: value for name, value in row.items() if name in _FIELDS}
        if len(values) < len(_FIELDS):
            missing = _REQUIRED - values.keys()
            if missing:
                raise KeyError(f"a job row needs {sorted(missing)}")
        values["status"] = JobStatus(values["status"])
        return cls(**values)


_FIELDS = frozenset(JobRecord.__dataclass_fields__)
_REQUIRED = _FIELDS - frozenset(_NOT_IN_SUMMARIES)
