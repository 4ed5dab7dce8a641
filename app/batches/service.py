"""Batch use cases: all-or-nothing submission, reading, cancelling. Never commits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import errors, ids, pagination
from app.accounts.active_jobs import Places
from app.admission import Admission, ProviderSet
from app.auth.service import AuthContext
from app.batches import repository, schemas
from app.jobs import service as jobs_service
from app.jobs.lifecycle import JobStatus
from app.jobs.record import JobRecord


async def admit_batch(providers: ProviderSet, body: schemas.BatchCreate) -> list[Admission]:
    """Every job is admitted as POST /jobs admits it before any is stored (all asked at once,
    each within the provider timeout); one that cannot run fails the whole batch, naming each
    bad job by its index and field: 400 when a job is invalid for its provider, else 503 when
    a job's provider is unavailable or not configured (`jobs[i].provider`)."""
    answers = await asyncio.gather(
        *(jobs_service.admit(providers, spec) for spec in body.jobs), return_exceptions=True
    )
    admitted: list[Admission] = []
    problems: list[dict[str, Any]] = []
    unavailable: list[dict[str, Any]] = []
    for index, answer in enumerate(answers):
        if isinstance(answer, errors.ValidationError):
            problems += _indexed(index, answer)
        elif isinstance(answer, errors.ProviderUnavailable):
            unavailable += _indexed(index, answer)
        elif isinstance(answer, BaseException):
            raise answer
        else:
            admitted.append(answer)
    for error_type, found in (
        (errors.ValidationError, problems),
        (errors.ProviderUnavailable, unavailable),
    ):
        if found:
            bad = len({problem["field"].split(".", 1)[0] for problem in found})
            raise error_type(
                f"{bad} of the batch's {len(body.jobs)} jobs cannot run"
                f"{'' if error_type is errors.ValidationError else ' now'}; nothing was created.",
                found,
            )
    return admitted


def _indexed(index: int, error: errors.GatewayError) -> list[dict[str, Any]]:
    """The error's details with each field under jobs[index] (`provider` when it has none)."""
    details = error.details or [{"field": "provider", "message": error.message}]
    return [{**detail, "field": f"jobs[{index}].{detail['field']}"} for detail in details]


async def create_batch(
    connection: AsyncConnection,
    auth: AuthContext,
    body: schemas.BatchCreate,
    admitted: Sequence[Admission],
    places: Places,
    *,
    cost_reserved: Sequence[Decimal] | None = None,
) -> schemas.BatchSubmitted:
    """Store an admitted batch and its jobs (admit_batch's answers, in the same order) at
    `places` in the account's active-jobs quota, with the cost each reserves from its
    budgets."""
    account_id = auth.account_id
    reserved = list(cost_reserved) if cost_reserved is not None else [Decimal(0)] * len(admitted)
    batch = await repository.insert_batch(
        connection,
        {
            "id": ids.new_id("bat"),
            "account_id": account_id,
            "concurrency": body.concurrency,
            "size": len(body.jobs),
        },
    )
    for index, (spec, admission) in enumerate(zip(body.jobs, admitted, strict=True)):
        await jobs_service.create_job(
            connection,
            account_id,
            spec,
            admission,
            places=places,
            batch_id=batch["id"],
            batch_index=index,
            api_key_id=auth.key_id,
            cost_reserved=reserved[index],
        )
    return schemas.BatchSubmitted(
        batch_id=batch["id"],
        job_ids=[admission.job_id for admission in admitted],
        concurrency=body.concurrency,
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
    for unfinished_row in unfinished:
        job = await jobs_service.request_cancel(connection, JobRecord.from_row(unfinished_row))
        if job.status is JobStatus.CANCELLING:
            stopping.append(job.id)
    row = await repository.mark_cancelled(connection, row["id"])
    return await _describe(connection, row), stopping
