"""Job states and the transitions between them.

pending -> scheduled -> running -> completed | failed; any unfinished state -> cancelling ->
cancelled. A pending job has started nothing, so cancelling it ends it at once.
"""

from __future__ import annotations

from enum import StrEnum


class IllegalTransition(RuntimeError):
    """A state change the lifecycle does not allow: a bug in the caller, never user input."""


class JobStatus(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset(
        {JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.SCHEDULED: frozenset(
        {JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLING}
    ),
    JobStatus.RUNNING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLING}),
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED, JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

# The event each state records when a job enters it.
EVENT_FOR: dict[JobStatus, str] = {
    JobStatus.PENDING: "created",
    JobStatus.SCHEDULED: "scheduled",
    JobStatus.RUNNING: "started",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLING: "cancelling",
    JobStatus.CANCELLED: "cancelled",
}


def can_move(current: JobStatus, target: JobStatus) -> bool:
    return target in ALLOWED[current]
