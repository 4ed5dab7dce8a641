"""Job use cases: the rules, no SQL, never commits (the caller's transaction does)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import admission, errors, ids, pagination
from app.accounts import service as accounts
from app.accounts.active_jobs import Places
from app.accounts.limits import AccountLimits
from app.admission import Admission, ProviderSet, workload_spec
from app.envelope import utc_iso
from app.jobs import repository, schemas, summary
from app.jobs.lifecycle import EVENT_FOR, IllegalTransition, JobStatus, can_move
from app.jobs.record import JobRecord
from app.observability import metrics as observability_metrics
from app.webhooks import service as webhooks_service
from providers import available_providers
from providers.registry import AUTO
from providers.types import Quote

_TIMESTAMP_SORT_KEYS = {"createdAt", "startedAt", "endedAt"}


def spec_document(job: JobRecord) -> dict[str, Any]:
    """The job's specification as the API shows it: what a workload finds in its spec file."""
    return {
        "id": job.id,
        "provider": job.provider,
        "image": job.image,
        "cpu": job.cpu,
        "memory": job.memory,
        "storage": job.storage,
        "duration": job.duration,
        "createdAt": utc_iso(job.created_at),
        "config": job.config,
    }


def _summary_columns(job: JobRecord) -> dict[str, Any]:
    """The stored columns a summary reads, from a job read whole."""
    return {name: getattr(job, name) for name in summary.COLUMNS}


def to_job(job: JobRecord, events: Sequence[RowMapping]) -> schemas.Job:
    return schemas.Job.model_validate(
        {
            **summary.job_summary(_summary_columns(job), datetime.now(UTC)),
            "config": schemas.JobConfig.model_validate(job.config, strict=False),
            "results": schemas.Results.model_validate(_results(job)),
            "events": [
                schemas.JobEvent(type=e["type"], timestamp=e["timestamp"], message=e["message"])
                for e in events
            ],
        }
    )


def _results(job: JobRecord) -> dict[str, Any]:
    """The job's results; `outputUrl` falls back to the URL the workload declared."""
    results = job.results or {}
    if results.get("outputUrl") is None and job.output_url is not None:
        return {**results, "outputUrl": job.output_url}
    return results


def allowed(spec: schemas.JobSpec, limits: AccountLimits) -> schemas.JobSpec:
    """The spec if the account may use its provider (403 PROVIDER_NOT_ALLOWED if not); an
    `auto` job keeps only the candidates the account may use, so the engine never places it
    elsewhere."""
    if spec.provider != AUTO:
        accounts.allowed_providers(limits, spec.provider)
        return spec
    kept = accounts.allowed_providers(limits, AUTO, spec.providers or available_providers())
    if kept is None or kept == spec.providers:
        return spec
    return spec.model_copy(update={"providers": kept})


async def admit(providers: ProviderSet, spec: schemas.JobSpec) -> Admission:
    """Everything POST /jobs checks beyond the schema, asked of the providers before any
    transaction opens; the admission carries the new job's id. Raises the refusal (400, 503)."""
    return await admission.admit(providers, workload_spec(job_document(spec, ids.new_id("job"))))


def job_document(spec: schemas.JobSpec, job_id: str) -> dict[str, Any]:
    config = spec.model_dump(
        mode="json", by_alias=True, include=set(schemas.JobConfig.model_fields)
    )
    return {
        **spec.model_dump(mode="json", by_alias=True, exclude=set(config)),
        "id": job_id,
        "config": config,
    }


def price_changes(quote: Quote, duration: int) -> dict[str, Any]:
    """The job's price columns from a quote: the one taken at creation or submission, or the
    price the network settled on later (an accepted bid)."""
    native = quote.native
    return {
        "usd_per_hour": quote.usd_per_hour,
        "cost_projected": round(quote.usd_per_hour * duration / 3600, 6),
        "native_price": None
        if native is None
        else {
            "denom": native.denom,
            "amount": native.amount,
            "unit": native.unit,
            "unitsPerHour": native.units_per_hour,
        },
    }


async def create_job(
    connection: AsyncConnection,
    account_id: str,
    spec: schemas.JobSpec,
    admitted: Admission,
    *,
    places: Places,
    template_id: str | None = None,
    batch_id: str | None = None,
    batch_index: int | None = None,
    api_key_id: str | None = None,
    cost_reserved: Decimal = Decimal(0),
) -> schemas.Job:
    """Store an admitted job, at one of `places` (its account's active-jobs quota: refused
    with 403 when none is left), with its `created` event and webhook deliveries; the template
    or the batch it came from, if any; the key that submitted it and the cost it holds against
    its budgets while unfinished (app.accounts.budgets). `cost.projected` is the admission's
    quote (the chosen provider's, for auto) from the start."""
    config = spec.model_dump(
        mode="json", by_alias=True, include=set(schemas.JobConfig.model_fields)
    )
    values: dict[str, Any] = {
        "id": admitted.job_id,
        "account_id": account_id,
        "provider": spec.provider,
        "status": JobStatus.PENDING.value,
        "image": spec.image,
        "cpu": spec.cpu,
        "memory": spec.memory,
        "storage": spec.storage,
        "duration": spec.duration,
        "config": config,
        "results": {"exitCode": None, "outputUrl": None},
        "template_id": template_id,
        "batch_id": batch_id,
        "batch_index": batch_index,
        "api_key_id": api_key_id,
        "cost_reserved": cost_reserved,
        **(price_changes(admitted.quote, spec.duration) if admitted.quote else {}),
    }

    async def insert_at(place: int, places_below: int | None) -> RowMapping | None:
        return await repository.insert_job(
            connection, {**values, "quota_slot": place}, places_below=places_below
        )

    row = await places.store(connection, insert_at)
    await _publish(
        connection,
        row,
        EVENT_FOR[JobStatus.PENDING],
        row["created_at"],
        subscribed=row["webhook_endpoint_ids"] or [],
    )
    created = {
        "type": EVENT_FOR[JobStatus.PENDING],
        "timestamp": row["created_at"],
        "message": None,
    }
    return to_job(JobRecord.from_row(row), [created])  # type: ignore[list-item]


async def get_job(connection: AsyncConnection, account_id: str, job_id: str) -> schemas.Job:
    job = await find_job(connection, account_id, job_id)
    return to_job(job, await repository.list_events(connection, job_id))


async def find_job(
    connection: AsyncConnection, account_id: str, job_id: str, *, for_update: bool = False
) -> JobRecord:
    row = None
    if ids.looks_like("job", job_id):
        row = await repository.get_job(connection, account_id, job_id, for_update=for_update)
    if row is None:
        raise errors.JobNotFound(f"Job {job_id} not found.")
    return JobRecord.from_row(row)


async def transition(
    connection: AsyncConnection,
    job: JobRecord,
    target: JobStatus,
    *,
    message: str | None = None,
    changes: dict[str, Any] | None = None,
) -> JobRecord:
    """Move a locked job to `target`, recording the event in the same transaction."""
    if not can_move(job.status, target):
        raise IllegalTransition(f"job {job.id} cannot go from {job.status} to {target}")
    values: dict[str, Any] = {"status": target.value, **(changes or {})}
    if target.is_terminal and job.ended_at is None:
        values.setdefault("ended_at", repository.NOW)
    if target.is_terminal and job.started_at is None and "started_at" not in values:
        # Never started: the gateway's waiting message ends with the wait.
        values.update(status_message=None, progress_unsent=False)
    updated = await repository.update_job(connection, job.id, values)
    if target.is_terminal and updated["progress_unsent"]:
        # The final progress is always delivered, throttled or not, before the final event.
        updated = await announce_progress(connection, updated)
    # The start the provider reports (not when it was seen) is the `started` event's time, so
    # that the job's startedAt and its event read the same.
    started = values.get("started_at") if target is JobStatus.RUNNING else None
    event = await repository.append_event(
        connection,
        job.id,
        EVENT_FOR[target],
        message=message,
        at=started if isinstance(started, datetime) else None,
    )
    await _publish(connection, updated, EVENT_FOR[target], event["timestamp"])
    return JobRecord.from_row(updated)


PROGRESS_EVENT = "progress"


def progress_data(row: RowMapping) -> dict[str, Any]:
    """What a `progress` event carries: the job's progress columns as the API names them."""
    return {
        "progress": row["progress"],
        "statusMessage": row["status_message"],
        "outputUrl": row["output_url"],
    }


def _progress_message(row: RowMapping) -> str | None:
    parts = [] if row["progress"] is None else [f"{row['progress']}%"]
    if row["status_message"] is not None:
        parts.append(row["status_message"])
    return ": ".join(parts) or None


async def announce_progress(connection: AsyncConnection, row: RowMapping) -> RowMapping:
    """The job's `progress` event and its `job.progress` webhooks, from the job's columns as
    they are now (app.jobs.progress decides when: this only writes)."""
    updated = await repository.update_job(
        connection,
        row["id"],
        {
            "progress_unsent": False,
            "progress_reported_at": datetime.now(UTC),
            "progress_events": row["progress_events"] + 1,
        },
    )
    event = await repository.append_event(
        connection,
        row["id"],
        PROGRESS_EVENT,
        message=_progress_message(updated),
        data=progress_data(updated),
    )
    await _publish(connection, updated, PROGRESS_EVENT, event["timestamp"])
    return updated


SECRET_MASK = "***"


def without_secrets(document: dict[str, Any]) -> dict[str, Any]:
    """The job document with its `env` values masked (names kept): what leaves the gateway
    for somewhere else (a webhook receiver) never carries them."""
    config = document.get("config")
    env = config.get("env") if isinstance(config, dict) else None
    if isinstance(config, dict) and isinstance(env, dict) and env:
        document = {**document, "config": {**config, "env": dict.fromkeys(env, SECRET_MASK)}}
    return document


async def _publish(
    connection: AsyncConnection,
    row: RowMapping,
    event: str,
    occurred_at: datetime,
    *,
    subscribed: Sequence[str] | None = None,
) -> None:
    """Webhook deliveries of a job event, written in the same transaction as the event, with
    the event's own time (to the `subscribed` endpoints when the caller read them already)."""

    async def document() -> Any:
        events = await repository.list_events(connection, row["id"])
        job = to_job(JobRecord.from_row(row), events).model_dump(mode="json", by_alias=True)
        return without_secrets(job)

    await webhooks_service.publish_job_event(
        connection,
        account_id=row["account_id"],
        job_id=row["id"],
        event=event,
        job_document=document,
        occurred_at=occurred_at,
        subscribed=subscribed,
    )
    observability_metrics.job_event(connection, row, event)


async def cancel_job(connection: AsyncConnection, account_id: str, job_id: str) -> schemas.Job:
    job = await find_job(connection, account_id, job_id, for_update=True)
    if job.status.is_terminal:
        raise errors.JobAlreadyFinished(
            f"Job {job_id} already ended with status {job.status.value}; there is nothing to"
            " cancel."
        )
    job = await request_cancel(connection, job)
    return to_job(job, await repository.list_events(connection, job_id))


async def request_cancel(connection: AsyncConnection, job: JobRecord) -> JobRecord:
    """Cancel a locked, unfinished job: a pending one ends now, others once the engine has
    stopped their workload."""
    if job.status is JobStatus.PENDING:
        job = await transition(
            connection, job, JobStatus.CANCELLED, message="Cancelled before it was scheduled."
        )
    elif job.status is not JobStatus.CANCELLING:
        job = await transition(connection, job, JobStatus.CANCELLING, message="Cancel requested.")
    return job


async def list_jobs(
    connection: AsyncConnection, account_id: str, query: schemas.JobListQuery
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A page of job summaries (JSON values, app.jobs.summary) and its pagination meta."""
    sort = pagination.parse_sort(query.sort, schemas.SORT_FIELDS)
    job_filter = repository.JobFilter(
        account_id=account_id,
        statuses=[status.value for status in query.status] if query.status else None,
        providers=query.provider,
        created_from=query.from_,
        created_to=query.to,
        batch_id=query.batch_id,
    )
    fingerprint = pagination.fingerprint(
        {
            "batchId": query.batch_id,
            "status": job_filter.statuses,
            "provider": job_filter.providers,
            "from": query.from_,
            "to": query.to,
            "limit": query.limit,
        }
    )
    page, offset, after = query.page, (query.page - 1) * query.limit, None
    if query.cursor is not None:
        cursor = pagination.Cursor.decode(query.cursor)
        pagination.check_cursor(cursor, sort=sort, query=fingerprint)
        page, offset, after = cursor.page, 0, _decode_sort_values(sort.field, cursor.after)
    rows = await repository.list_jobs(
        connection,
        job_filter,
        sort_field=sort.field,
        descending=sort.descending,
        limit=query.limit,
        offset=offset,
        after=after,
    )
    total = await repository.count_jobs(connection, job_filter)
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = None
    if has_more:
        next_cursor = pagination.Cursor(
            sort=sort.text,
            after=_encode_sort_values(sort.field, rows[-1]),
            page=page + 1,
            query=fingerprint,
        ).encode()
    meta = {
        "pagination": {
            "total": total,
            "page": page,
            "limit": query.limit,
            "pages": pagination.pages(total, query.limit),
            "nextCursor": next_cursor,
        }
    }
    now = datetime.now(UTC)
    return [summary.job_summary(row, now) for row in rows], meta


def _sort_key_names(sort_field: str) -> list[str]:
    return ["createdAt", "id"] if sort_field == "createdAt" else [sort_field, "createdAt", "id"]


_ROW_KEYS = {
    "createdAt": "created_at",
    "startedAt": "started_at",
    "endedAt": "ended_at",
    "status": "status",
    "provider": "provider",
    "id": "id",
}


def _encode_sort_values(sort_field: str, row: RowMapping) -> list[Any]:
    values = []
    for name in _sort_key_names(sort_field):
        value = row[_ROW_KEYS[name]]
        values.append(value.isoformat() if isinstance(value, datetime) else value)
    return values


def _decode_sort_values(sort_field: str, raw: list[Any]) -> list[Any]:
    names = _sort_key_names(sort_field)
    if len(raw) != len(names):
        raise _cursor_error()
    values: list[Any] = []
    for name, value in zip(names, raw, strict=True):
        if value is None and name in ("startedAt", "endedAt"):
            values.append(None)
        elif name in _TIMESTAMP_SORT_KEYS:
            try:
                values.append(datetime.fromisoformat(value))
            except (TypeError, ValueError) as exc:
                raise _cursor_error() from exc
        elif isinstance(value, str):
            values.append(value)
        else:
            raise _cursor_error()
    return values


def _cursor_error() -> errors.ValidationError:
    return errors.ValidationError(
        "Invalid cursor.", [{"field": "cursor", "message": "cursor is not one this API issued"}]
    )
