"""Batch use cases: all-or-nothing submission, reading, cancelling. Never commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import errors, ids, pagination
from app.admission.providers import ProviderSet
from app.batches import repository, schemas
from app.jobs import service as jobs_service
from app.jobs.lifecycle import JobStatus


async def create_batch(
    connection: AsyncConnection,
    account_id: str,
    body: schemas.BatchCreate,
    providers: ProviderSet,
) -> schemas.BatchSubmitted:
    """Every job is checked as POST /jobs checks it before any is stored; one that cannot run
    fails the whole batch with a 400 naming each bad job by its index and field."""
    job_ids: list[str] = []
    problems: list[dict[str, Any]] = []
    for index, spec in enumerate(body.jobs):
        try:
            job_ids.append(await jobs_service.check_job(providers, spec))
        except errors.ValidationError as exc:
            problems += [{**d, "field": f"jobs[{index}].{d['field']}"} for d in exc.details]
    if problems:
        bad = len({problem["field"].split(".", 1)[0] for problem in problems})
        raise errors.ValidationError(
            f"{bad} of the batch's {len(body.jobs)} jobs cannot run; nothing was created.",
            problems,
        )
    batch = await repository.insert_batch(
        connection,
        {
            "id": ids.new_id("bat"),
            "account_id": account_id,
            "concurrency": body.concurrency,
            "size": len(body.jobs),
        },
    )
    for index, (spec, job_id) in enumerate(zip(body.jobs, job_ids, strict=True)):
        await jobs_service.add_job(
            connection, account_id, spec, job_id, batch_id=batch["id"], batch_index=index
        )
    return schemas.BatchSubmitted(
        batch_id=batch["id"], job_ids=job_ids, concurrency=body.concurrency
    )


async def find_batch(
    connection: AsyncConnection, account_id: str, batch_id: str, *, for_update: bool = False
) -> RowMapping:
    row = None
    if ids.looks_like("bat", batch_id):
        row = await repository.get_batch(connection, account_id, batch_id, for_update=for_update)
    if row is None:
        raise errors.BatchNotFound(f"Batch {batch_id} not found.")
    return row


async def get_batch(connection: AsyncConnection, account_id: str, batch_id: str) -> schemas.Batch:
    return await _describe(connection, await find_batch(connection, account_id, batch_id))


async def list_batches(
    connection: AsyncConnection, account_id: str, query: schemas.BatchListQuery
) -> tuple[list[schemas.BatchSummary], dict[str, Any]]:
    rows, total = await repository.list_batches(
        connection, account_id, limit=query.limit, offset=(query.page - 1) * query.limit
    )
    counts = await repository.status_counts(connection, [row["id"] for row in rows])
    meta = {
        "pagination": {
            "total": total,
            "page": query.page,
            "limit": query.limit,
            "pages": pagination.pages(total, query.limit),
        }
    }
    return [schemas.BatchSummary(**_summary(row, counts[row["id"]])) for row in rows], meta


def _summary(row: RowMapping, found: dict[str, int]) -> dict[str, Any]:
    counts = {status: found.get(status.value, 0) for status in JobStatus}
    unfinished = any(counts[status] for status in JobStatus if not status.is_terminal)
    if row["cancelled_at"] is not None:
        status = "cancelling" if unfinished else "cancelled"
    else:
        status = "active" if unfinished else "finished"
    return {
        "id": row["id"],
        "status": status,
        "concurrency": row["concurrency"],
        "total": row["size"],
        "counts": counts,
        "created_at": row["created_at"],
        "cancelled_at": row["cancelled_at"],
    }


async def _describe(connection: AsyncConnection, row: RowMapping) -> schemas.Batch:
    counts = await repository.status_counts(connection, [row["id"]])
    return schemas.Batch(
        **_summary(row, counts[row["id"]]),
        job_ids=await repository.job_ids(connection, row["id"]),
    )


async def cancel_batch(
    connection: AsyncConnection, account_id: str, batch_id: str
) -> tuple[schemas.Batch, list[str]]:
    """Cancel every unfinished job of the batch, each with its events and webhook
    deliveries, in the caller's transaction. Returns the batch and the jobs whose workloads
    the engine must now stop."""
    row = await find_batch(connection, account_id, batch_id, for_update=True)
    unfinished = await repository.lock_unfinished_jobs(connection, row["id"])
    if not unfinished:
        raise errors.BatchAlreadyFinished(
            f"Every job of batch {batch_id} has already ended; there is nothing to cancel."
        )
    stopping = []
    for job in unfinished:
        job = await jobs_service.request_cancel(connection, job)
        if job["status"] == JobStatus.CANCELLING:
            stopping.append(job["id"])
    row = await repository.mark_cancelled(connection, row["id"])
    return await _describe(connection, row), stopping
