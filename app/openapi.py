"""The OpenAPI 3.1 document, generated from the pydantic models that validate requests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app import __version__, errors
from app.auth.scopes import Scope
from app.batches import schemas as batch_schemas
from app.catalog import schemas as catalog_schemas
from app.idempotency import requests as idempotency
from app.job_templates import schemas as template_schemas
from app.jobs import schemas as job_schemas
from app.streams import schemas as stream_schemas
from app.telemetry import schemas as telemetry_schemas
from app.webhooks import schemas as webhook_schemas

PREFIX = "/api/plugin-core"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    scope: Scope | None
    response: type[BaseModel] | None
    status: int = 200
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    list_response: bool = False
    error_types: tuple[type[errors.GatewayError], ...] = field(default_factory=tuple)
    # Takes an Idempotency-Key header.
    idempotent: bool = False


_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^job_[0-9a-f]{12,32}$"},
}

OPERATIONS = (
    Operation(
        "post",
        "/jobs",
        "createJob",
        "Submit a job",
        Scope.JOBS_WRITE,
        job_schemas.Job,
        status=201,
        request=job_schemas.JobSpec,
        error_types=(errors.ValidationError, errors.UnsupportedMediaType, errors.PayloadTooLarge),
        idempotent=True,
    ),
    Operation(
        "get",
        "/jobs",
        "listJobs",
        "List jobs",
        Scope.JOBS_READ,
        job_schemas.JobSummary,
        query=job_schemas.JobListQuery,
        list_response=True,
        error_types=(errors.ValidationError,),
    ),
    Operation(
        "get",
        "/jobs/{job_id}",
        "getJob",
        "Get a job with its events",
        Scope.JOBS_READ,
        job_schemas.Job,
        error_types=(errors.JobNotFound,),
    ),
    Operation(
        "post",
        "/jobs/{job_id}/cancel",
        "cancelJob",
        "Cancel a job",
        Scope.JOBS_WRITE,
        job_schemas.Job,
        error_types=(errors.JobNotFound, errors.JobAlreadyFinished),
    ),
    Operation(
        "get",
        "/jobs/{job_id}/logs",
        "getJobLogs",
        "Read a job's log lines; with follow=true, a live Server-Sent Events stream",
        Scope.JOBS_READ,
        telemetry_schemas.Logs,
        query=telemetry_schemas.LogQuery,
        error_types=(errors.ValidationError, errors.JobNotFound),
    ),
    Operation(
        "get",
        "/jobs/{job_id}/events",
        "getJobEvents",
        "Read a job's events; with follow=true, a live Server-Sent Events stream",
        Scope.JOBS_READ,
        stream_schemas.JobEvents,
        query=stream_schemas.JobEventsQuery,
        error_types=(errors.ValidationError, errors.JobNotFound),
    ),
    Operation(
        "get",
        "/jobs/events",
        "getAccountEvents",
        "Status changes of every job of the account; with follow=true, live",
        Scope.JOBS_READ,
        stream_schemas.AccountEvents,
        query=stream_schemas.AccountEventsQuery,
        error_types=(errors.ValidationError,),
    ),
    Operation(
        "post",
        "/jobs/events/stream-token",
        "createAccountStreamToken",
        "Issue a short-lived token for the account's status stream (for EventSource)",
        Scope.JOBS_READ,
        stream_schemas.StreamToken,
        status=201,
    ),
    Operation(
        "post",
        "/jobs/{job_id}/stream-token",
        "createStreamToken",
        "Issue a short-lived token for this job's streams (for EventSource)",
        Scope.JOBS_READ,
        stream_schemas.StreamToken,
        status=201,
        error_types=(errors.JobNotFound,),
    ),
    Operation(
        "get",
        "/jobs/{job_id}/metrics",
        "getJobMetrics",
        "Read a job's resource use",
        Scope.JOBS_READ,
        telemetry_schemas.Metrics,
        query=telemetry_schemas.MetricQuery,
        error_types=(errors.ValidationError, errors.JobNotFound),
    ),
)


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_WEBHOOK_ERRORS = (errors.ValidationError, errors.WebhookNotFound)
WEBHOOK_OPERATIONS = (
    Operation(
        "post",
        "/webhooks",
        "createWebhook",
        "Subscribe an endpoint to job events",
        Scope.WEBHOOKS_WRITE,
        webhook_schemas.EndpointWithSecret,
        status=201,
        request=webhook_schemas.EndpointCreate,
        error_types=(errors.ValidationError, errors.UnsupportedMediaType),
    ),
    Operation(
        "get",
        "/webhooks",
        "listWebhooks",
        "List webhook endpoints",
        Scope.WEBHOOKS_READ,
        webhook_schemas.Endpoint,
        query=webhook_schemas.ListQuery,
        list_response=True,
        error_types=(errors.ValidationError,),
    ),
    Operation(
        "get",
        "/webhooks/{endpoint_id}",
        "getWebhook",
        "Get a webhook endpoint",
        Scope.WEBHOOKS_READ,
        webhook_schemas.Endpoint,
        error_types=(errors.WebhookNotFound,),
    ),
    Operation(
        "patch",
        "/webhooks/{endpoint_id}",
        "updateWebhook",
        "Change an endpoint's url, events or active flag",
        Scope.WEBHOOKS_WRITE,
        webhook_schemas.Endpoint,
        request=webhook_schemas.EndpointUpdate,
        error_types=_WEBHOOK_ERRORS,
    ),
    Operation(
        "delete",
        "/webhooks/{endpoint_id}",
        "deleteWebhook",
        "Delete an endpoint",
        Scope.WEBHOOKS_WRITE,
        None,
        status=204,
        error_types=(errors.WebhookNotFound,),
    ),
    Operation(
        "post",
        "/webhooks/{endpoint_id}/rotate-secret",
        "rotateWebhookSecret",
        "Replace the signing secret (the old one signs too for a grace period)",
        Scope.WEBHOOKS_WRITE,
        webhook_schemas.EndpointWithSecret,
        request=webhook_schemas.SecretRotation,
        error_types=_WEBHOOK_ERRORS,
    ),
    Operation(
        "post",
        "/webhooks/{endpoint_id}/test",
        "testWebhook",
        "Send a webhook.test event",
        Scope.WEBHOOKS_WRITE,
        webhook_schemas.Delivery,
        status=202,
        error_types=(errors.WebhookNotFound,),
    ),
    Operation(
        "get",
        "/webhooks/{endpoint_id}/deliveries",
        "listWebhookDeliveries",
        "Deliveries with their attempts",
        Scope.WEBHOOKS_READ,
        webhook_schemas.Delivery,
        query=webhook_schemas.DeliveryQuery,
        list_response=True,
        error_types=_WEBHOOK_ERRORS,
    ),
    Operation(
        "post",
        "/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry",
        "retryWebhookDelivery",
        "Send a delivery again now",
        Scope.WEBHOOKS_WRITE,
        webhook_schemas.Delivery,
        status=202,
        error_types=(errors.WebhookNotFound, errors.DeliveryNotFound),
    ),
)

PROVIDER_OPERATIONS = (
    Operation(
        "get",
        "/providers",
        "listProviders",
        "Every provider: health, what it can run, how it prices",
        Scope.JOBS_READ,
        catalog_schemas.Provider,
        list_response=True,
    ),
    Operation(
        "get",
        "/providers/{name}",
        "getProvider",
        "One provider: health, what it can run, how it prices",
        Scope.JOBS_READ,
        catalog_schemas.Provider,
        error_types=(errors.ProviderNotFound,),
    ),
    Operation(
        "post",
        "/providers/quote",
        "quoteProviders",
        'Compare what each provider would charge for a job spec (what "auto" would pick)',
        Scope.JOBS_READ,
        catalog_schemas.QuoteComparison,
        request=catalog_schemas.QuoteRequest,
        error_types=(errors.ValidationError, errors.UnsupportedMediaType, errors.PayloadTooLarge),
    ),
)

_TEMPLATE_ERRORS = (errors.ValidationError, errors.TemplateNotFound)
TEMPLATE_OPERATIONS = (
    Operation(
        "post",
        "/jobs/templates",
        "createTemplate",
        "Save a job specification as a named template",
        Scope.TEMPLATES_WRITE,
        template_schemas.Template,
        status=201,
        request=template_schemas.TemplateCreate,
        error_types=(
            errors.ValidationError,
            errors.TemplateNameTaken,
            errors.UnsupportedMediaType,
            errors.ProviderUnavailable,
        ),
    ),
    Operation(
        "get",
        "/jobs/templates",
        "listTemplates",
        "List the account's templates",
        Scope.TEMPLATES_READ,
        template_schemas.Template,
        query=template_schemas.TemplateListQuery,
        list_response=True,
        error_types=(errors.ValidationError,),
    ),
    Operation(
        "get",
        "/jobs/templates/{template_id}",
        "getTemplate",
        "Get a template",
        Scope.TEMPLATES_READ,
        template_schemas.Template,
        error_types=(errors.TemplateNotFound,),
    ),
    Operation(
        "patch",
        "/jobs/templates/{template_id}",
        "updateTemplate",
        "Rename a template, or replace its description or config",
        Scope.TEMPLATES_WRITE,
        template_schemas.Template,
        request=template_schemas.TemplateUpdate,
        error_types=(*_TEMPLATE_ERRORS, errors.TemplateNameTaken, errors.ProviderUnavailable),
    ),
    Operation(
        "delete",
        "/jobs/templates/{template_id}",
        "deleteTemplate",
        "Delete a template (jobs made from it keep its id)",
        Scope.TEMPLATES_WRITE,
        None,
        status=204,
        error_types=(errors.TemplateNotFound,),
    ),
    Operation(
        "post",
        "/jobs/from-template/{template_id}",
        "createJobFromTemplate",
        "Submit a job from a template with overrides (also needs templates:read)",
        Scope.JOBS_WRITE,
        job_schemas.Job,
        status=201,
        request=template_schemas.JobFromTemplate,
        error_types=(*_TEMPLATE_ERRORS, errors.UnsupportedMediaType, errors.ProviderUnavailable),
        idempotent=True,
    ),
)

BATCH_OPERATIONS = (
    Operation(
        "post",
        "/jobs/batch",
        "createBatch",
        "Submit several jobs at once, all or none, run at most `concurrency` at a time",
        Scope.JOBS_WRITE,
        batch_schemas.BatchSubmitted,
        status=201,
        request=batch_schemas.BatchCreate,
        error_types=(
            errors.ValidationError,
            errors.UnsupportedMediaType,
            errors.PayloadTooLarge,
            errors.ProviderUnavailable,
        ),
        idempotent=True,
    ),
    Operation(
        "get",
        "/jobs/batch",
        "listBatches",
        "List the account's batches, newest first, with counts per status",
        Scope.JOBS_READ,
        batch_schemas.BatchSummary,
        query=batch_schemas.BatchListQuery,
        list_response=True,
        error_types=(errors.ValidationError,),
    ),
    Operation(
        "get",
        "/jobs/batch/{batch_id}",
        "getBatch",
        "Get a batch with how many of its jobs are in each status",
        Scope.JOBS_READ,
        batch_schemas.Batch,
        error_types=(errors.BatchNotFound,),
    ),
    Operation(
        "post",
        "/jobs/batch/{batch_id}/cancel",
        "cancelBatch",
        "Cancel every unfinished job of a batch",
        Scope.JOBS_WRITE,
        batch_schemas.Batch,
        error_types=(errors.BatchNotFound, errors.BatchAlreadyFinished),
    ),
)

_IDEMPOTENCY_KEY = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": "Retries with the same key and body within 24 hours answer the first "
    "response (with `Idempotent-Replayed: true`) and create nothing; the same key with "
    "another body answers 422 IDEMPOTENCY_KEY_REUSED. Keys are per account.",
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH},
}

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "enum": sorted({e.code for e in errors.ALL_ERRORS})},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        },
    },
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_parameters(model: type[BaseModel], definitions: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions.update(schema.get("$defs", {}))
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": prop.pop("description", ""),
            "schema": prop,
            "explode": False,
        }
        for name, prop in schema["properties"].items()
    ]


def _responses(operation: Operation) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if operation.response is not None:
        data = _ref(operation.response)
        if operation.list_response:
            data = {"type": "array", "items": data}
    if operation.status == 204:
        success: dict[str, Any] = {"description": operation.summary}
        responses: dict[str, Any] = {"204": success}
        return _add_errors(responses, operation)
    success = {
        "description": operation.summary,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["success", "data"],
                    "properties": {
                        "success": {"const": True},
                        "data": data,
                        "meta": {"type": "object"},
                    },
                }
            }
        },
    }
    if operation.query is not None and "follow" in operation.query.model_fields:
        success["content"]["text/event-stream"] = {  # type: ignore[index]
            "schema": {"type": "string", "description": "With follow=true: Server-Sent Events"}
        }
    responses = {str(operation.status): success}
    return _add_errors(responses, operation)


def _add_errors(responses: dict[str, Any], operation: Operation) -> dict[str, Any]:
    error_types = [*list(operation.error_types), errors.InternalError]
    if operation.idempotent:
        error_types += [errors.IdempotencyKeyReused]
    if operation.scope is not None:
        error_types += [errors.Unauthorized, errors.Forbidden]
    for error_type in sorted(error_types, key=lambda e: e.status_code):
        entry = responses.setdefault(
            str(error_type.status_code),
            {
                "description": "",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        )
        codes = [c for c in entry["description"].split(", ") if c]
        entry["description"] = ", ".join([*codes, error_type.code])
    return responses


@cache
def document() -> dict[str, Any]:
    operations = (
        OPERATIONS
        + TEMPLATE_OPERATIONS
        + BATCH_OPERATIONS
        + WEBHOOK_OPERATIONS
        + PROVIDER_OPERATIONS
    )
    request_models = [op.request for op in operations if op.request is not None]
    response_models = [op.response for op in operations if op.response is not None]
    _, generated = models_json_schema(
        [(model, "validation") for model in request_models]
        + [(model, "serialization") for model in response_models],
        ref_template="#/components/schemas/{model}",
    )
    definitions: dict[str, Any] = dict(generated.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        parameters: list[dict[str, Any]] = []
        for name in re.findall(r"{(\w+)}", operation.path):
            parameters.append(_JOB_ID if name == "job_id" else _path_parameter(name))
        if operation.query is not None:
            parameters += _query_parameters(operation.query, definitions)
        if operation.idempotent:
            parameters.append(_IDEMPOTENCY_KEY)
        spec: dict[str, Any] = {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "parameters": parameters,
            "responses": _responses(operation),
        }
        if operation.scope is not None:
            spec["security"] = [{"bearerAuth": []}]
            spec["description"] = f"Needs the `{operation.scope.value}` scope."
        if operation.request is not None:
            spec["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(operation.request)}},
            }
        paths.setdefault(PREFIX + operation.path, {})[operation.method] = spec
    definitions["Error"] = _ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": "Cortex Gateway", "version": __version__},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": definitions,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
