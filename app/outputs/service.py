"""Output use cases: recording what collection found, finding a job's output for a download,
and the URL a job's JSON shows for it. No SQL (repository.py), never commits."""

from __future__ import annotations

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import errors
from app.jobs import repository as jobs_repository
from app.jobs import schemas
from app.jobs.lifecycle import JobStatus
from app.outputs import links, repository
from app.outputs.collect import Outcome


async def record(connection: AsyncConnection, job_id: str, outcome: Outcome | None) -> None:
    """The output row and the event saying what collection found, in the caller's
    transaction: the one that ends the job."""
    if outcome is None:
        return
    if outcome.packed is not None:
        await repository.save(connection, job_id, outcome.packed)
    if outcome.event is not None:
        await jobs_repository.append_event(
            connection, job_id, outcome.event, message=outcome.message, data=outcome.data or None
        )


async def for_account(connection: AsyncConnection, account_id: str, job_id: str) -> RowMapping:
    """A job's output, for a key of its account: JOB_NOT_FOUND for a job it cannot see,
    OUTPUT_NOT_FOUND when the job has none (yet)."""
    row = await repository.get_for_account(connection, account_id, job_id)
    if row is None:
        raise errors.JobNotFound()
    if row["store_key"] is None:
        raise errors.OutputNotFound()
    return row


async def for_link(
    connection: AsyncConnection, key: bytes, job_id: str, expires: str | None, signature: str | None
) -> RowMapping:
    """A job's output through a signed link: 403 OUTPUT_LINK_INVALID when the link is
    tampered with or expired, OUTPUT_NOT_FOUND when the job has no output (any more)."""
    if not links.verify(key, job_id, expires, signature):
        raise errors.OutputLinkInvalid()
    row = await repository.get_for_job(connection, job_id)
    if row is None:
        raise errors.OutputNotFound()
    return row


async def open_upload(
    connection: AsyncConnection, key: bytes, job_id: str, expires: str | None, signature: str | None
) -> None:
    """Whether a network may upload this job's output now: 403 OUTPUT_LINK_INVALID for a
    tampered or expired upload link, 404 for a job that is gone, 409 JOB_ALREADY_FINISHED once
    the job has ended (its output was settled with its end)."""
    if not links.verify(key, job_id, expires, signature, purpose=links.UPLOAD):
        raise errors.OutputLinkInvalid("This upload link is invalid or has expired.")
    status = await repository.job_status(connection, job_id)
    if status is None:
        raise errors.JobNotFound()
    if JobStatus(status).is_terminal:
        raise errors.JobAlreadyFinished("The job has ended; its output can no longer be uploaded.")


async def with_output_url(
    connection: AsyncConnection,
    job: schemas.Job,
    *,
    base_url: str,
    key: bytes,
    ttl_seconds: float,
) -> schemas.Job:
    """The job with `results.outputUrl` as links.output_url_for gives it (a fresh link)."""
    collected = await repository.get_for_job(connection, job.id) is not None
    url = links.output_url_for(
        job.id,
        collected=collected,
        declared=job.results.output_url,
        base_url=base_url,
        key=key,
        ttl_seconds=ttl_seconds,
    )
    return job.model_copy(update={"results": job.results.model_copy(update={"output_url": url})})
