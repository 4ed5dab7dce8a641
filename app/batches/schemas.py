"""Batches in the API's camelCase shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.envelope import Timestamp
from app.jobs.lifecycle import JobStatus
from app.jobs.schemas import JobSpec
from app.validation import Integer

MAX_BATCH_JOBS = 1000
MAX_CONCURRENCY = 100
# Without `concurrency`, a batch runs at most this many of its jobs at once.
DEFAULT_CONCURRENCY = 10


class BatchCreate(BaseModel):
    """The body of POST /jobs/batch."""

    model_config = ConfigDict(strict=True, extra="forbid")

    jobs: list[JobSpec] = Field(
        min_length=1,
        max_length=MAX_BATCH_JOBS,
        description=f"1 to {MAX_BATCH_JOBS} job specifications, each as POST /jobs takes it.",
    )
    concurrency: Integer = Field(
        default=DEFAULT_CONCURRENCY,
        ge=1,
        le=MAX_CONCURRENCY,
        description=f"At most this many of the batch's jobs run at once (1 to {MAX_CONCURRENCY}; "
        f"default {DEFAULT_CONCURRENCY}).",
    )


class _Output(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class BatchSubmitted(_Output):
    batch_id: str = Field(examples=["bat_1a2b3c4d5e6f7a8b"])
    job_ids: list[str] = Field(description="In the order of the request's jobs.")
    status: Literal["submitted"] = "submitted"
    concurrency: int


class BatchSummary(_Output):
    """A batch as GET /jobs/batch lists it."""

    id: str
    status: Literal["active", "finished", "cancelling", "cancelled"] = Field(
        description="active while any job is unfinished, then finished; cancelling and "
        "cancelled once a cancel was requested."
    )
    concurrency: int
    total: int = Field(description="How many jobs the batch has.")
    counts: dict[JobStatus, int] = Field(description="How many of its jobs are in each status.")
    created_at: Timestamp
    cancelled_at: Timestamp | None


class Batch(BatchSummary):
    """A batch with its jobs' ids."""

    job_ids: list[str] = Field(description="In the order of the request's jobs.")


class BatchListQuery(BaseModel):
    """Query parameters of GET /jobs/batch (newest first)."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=1_000_000)
    limit: int = Field(default=20, ge=1, le=100)
