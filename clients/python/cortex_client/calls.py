"""Every route of the API as a `Call`: its method, path, parameters, body and the model of
`cortex_client.models` its answer is read into. The sync and async clients only send these."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from httpx_sse import ServerSentEvent
from pydantic import BaseModel
from pydantic.alias_generators import to_camel

from cortex_client._core import Call, Page, StreamCall, idempotent, query
from cortex_client.models import (
    Account,
    AccountEvent,
    AccountEvents,
    Batch,
    BatchSubmitted,
    BatchSummary,
    Delivery,
    Endpoint,
    EndpointWithSecret,
    Job,
    JobEventEntry,
    JobEvents,
    JobSummary,
    LogEntry,
    Logs,
    Metrics,
    Provider,
    QuoteComparison,
    StreamToken,
    Template,
)


def body(spec: BaseModel | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A request body from a model (by its aliases), a mapping, and snake_case keywords; keywords
    left as None are not sent, so the gateway's defaults (or a template's) apply."""
    result: dict[str, Any] = {}
    if isinstance(spec, BaseModel):
        result.update(spec.model_dump(mode="json", by_alias=True, exclude_unset=True))
    elif spec is not None:
        result.update(spec)
    for name, value in fields.items():
        if value is not None:
            result[to_camel(name)] = _plain(value)
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


# Jobs


def submit_job(payload: dict[str, Any], idempotency_key: str | None) -> Call[Job]:
    return Call("POST", "/jobs", Job, body=payload, headers=idempotent(idempotency_key))


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"/jobs/{job_id}", Job)


def list_jobs(
    *,
    status: str | Iterable[str] | None = None,
    provider: str | Iterable[str] | None = None,
    from_: datetime | str | None = None,
    to: datetime | str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    page: int | None = None,
    cursor: str | None = None,
    batch_id: str | None = None,
) -> Call[Page[JobSummary]]:
    params = query(
        status=_listed(status),
        provider=_listed(provider),
        batchId=batch_id,
        sort=sort,
        limit=limit,
        page=page,
        cursor=cursor,
        to=to,
    )
    params.update(query(**{"from": from_}))
    return Call("GET", "/jobs", list[JobSummary], params=params, paged=True)


def _listed(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None or isinstance(value, str):
        return None if value is None else [value]
    return list(value)


def cancel_job(job_id: str) -> Call[Job]:
    return Call("POST", f"/jobs/{job_id}/cancel", Job)


def job_logs(job_id: str, *, tail: int | None, since: datetime | str | None) -> Call[Logs]:
    return Call("GET", f"/jobs/{job_id}/logs", Logs, params=query(tail=tail, since=since))


def job_events(job_id: str) -> Call[JobEvents]:
    return Call("GET", f"/jobs/{job_id}/events", JobEvents)


def account_events(*, limit: int | None) -> Call[AccountEvents]:
    return Call("GET", "/jobs/events", AccountEvents, params=query(limit=limit))


def job_metrics(job_id: str, *, period: str | None, resolution: str | None) -> Call[Metrics]:
    params = query(period=period, resolution=resolution)
    return Call("GET", f"/jobs/{job_id}/metrics", Metrics, params=params)


def stream_token(job_id: str) -> Call[StreamToken]:
    return Call("POST", f"/jobs/{job_id}/stream-token", StreamToken)


def account_stream_token() -> Call[StreamToken]:
    return Call("POST", "/jobs/events/stream-token", StreamToken)


def _log_entry(event: ServerSentEvent) -> LogEntry:
    return LogEntry(seq=int(event.id), **json.loads(event.data))


def _job_event(event: ServerSentEvent) -> JobEventEntry:
    return JobEventEntry(seq=int(event.id), **json.loads(event.data))


def _account_event(event: ServerSentEvent) -> AccountEvent:
    return AccountEvent.model_validate({"id": event.id, **json.loads(event.data)})


def follow_logs(
    job_id: str, *, tail: int | None, since: datetime | str | None
) -> StreamCall[LogEntry]:
    return StreamCall(f"/jobs/{job_id}/logs", _log_entry, query(tail=tail, since=since))


def follow_job_events(job_id: str) -> StreamCall[JobEventEntry]:
    return StreamCall(f"/jobs/{job_id}/events", _job_event)


def follow_account_events() -> StreamCall[AccountEvent]:
    return StreamCall("/jobs/events", _account_event)


# Webhooks


def create_webhook(payload: dict[str, Any]) -> Call[EndpointWithSecret]:
    return Call("POST", "/webhooks", EndpointWithSecret, body=payload)


def list_webhooks(*, page: int | None, limit: int | None) -> Call[Page[Endpoint]]:
    params = query(page=page, limit=limit)
    return Call("GET", "/webhooks", list[Endpoint], params=params, paged=True)


def get_webhook(endpoint_id: str) -> Call[Endpoint]:
    return Call("GET", f"/webhooks/{endpoint_id}", Endpoint)


def update_webhook(endpoint_id: str, payload: dict[str, Any]) -> Call[Endpoint]:
    return Call("PATCH", f"/webhooks/{endpoint_id}", Endpoint, body=payload)


def delete_webhook(endpoint_id: str) -> Call[None]:
    return Call("DELETE", f"/webhooks/{endpoint_id}")


def rotate_webhook_secret(endpoint_id: str, payload: dict[str, Any]) -> Call[EndpointWithSecret]:
    path = f"/webhooks/{endpoint_id}/rotate-secret"
    return Call("POST", path, EndpointWithSecret, body=payload or None)


def send_test_webhook(endpoint_id: str) -> Call[Delivery]:
    return Call("POST", f"/webhooks/{endpoint_id}/test", Delivery)


def list_deliveries(
    endpoint_id: str, *, status: str | None, page: int | None, limit: int | None
) -> Call[Page[Delivery]]:
    params = query(status=status, page=page, limit=limit)
    path = f"/webhooks/{endpoint_id}/deliveries"
    return Call("GET", path, list[Delivery], params=params, paged=True)


def retry_delivery(endpoint_id: str, delivery_id: str) -> Call[Delivery]:
    return Call("POST", f"/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry", Delivery)


# Providers


def list_providers() -> Call[list[Provider]]:
    return Call("GET", "/providers", list[Provider])


def get_provider(name: str) -> Call[Provider]:
    return Call("GET", f"/providers/{name}", Provider)


# The account


def get_account() -> Call[Account]:
    return Call("GET", "/account", Account)


# Templates


def create_template(payload: dict[str, Any]) -> Call[Template]:
    return Call("POST", "/jobs/templates", Template, body=payload)


def list_templates(
    *, page: int | None, limit: int | None, sort: str | None
) -> Call[Page[Template]]:
    params = query(page=page, limit=limit, sort=sort)
    return Call("GET", "/jobs/templates", list[Template], params=params, paged=True)


def get_template(template_id: str) -> Call[Template]:
    return Call("GET", f"/jobs/templates/{template_id}", Template)


def update_template(template_id: str, payload: dict[str, Any]) -> Call[Template]:
    return Call("PATCH", f"/jobs/templates/{template_id}", Template, body=payload)


def delete_template(template_id: str) -> Call[None]:
    return Call("DELETE", f"/jobs/templates/{template_id}")


def submit_from_template(
    template_id: str, overrides: dict[str, Any], idempotency_key: str | None
) -> Call[Job]:
    path = f"/jobs/from-template/{template_id}"
    body = {"overrides": overrides}
    return Call("POST", path, Job, body=body, headers=idempotent(idempotency_key))


# Batches


def submit_batch(payload: dict[str, Any], idempotency_key: str | None) -> Call[BatchSubmitted]:
    headers = idempotent(idempotency_key)
    return Call("POST", "/jobs/batch", BatchSubmitted, body=payload, headers=headers)


def list_batches(*, page: int | None, limit: int | None) -> Call[Page[BatchSummary]]:
    params = query(page=page, limit=limit)
    return Call("GET", "/jobs/batch", list[BatchSummary], params=params, paged=True)


def get_batch(batch_id: str) -> Call[Batch]:
    return Call("GET", f"/jobs/batch/{batch_id}", Batch)


def cancel_batch(batch_id: str) -> Call[Batch]:
    return Call("POST", f"/jobs/batch/{batch_id}/cancel", Batch)


def quote(payload: dict[str, Any]) -> Call[QuoteComparison]:
    return Call("POST", "/providers/quote", QuoteComparison, body=payload)
