"""The OpenAPI 3.1 document, built by walking the route table's declared operations and the
pydantic models that validate requests; nothing here lists a path."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from app import __version__, errors
from app.idempotency import requests as idempotency
from app.routing import ApiRoute, Operation

PREFIX = "/api/plugin-core"

_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^job_[0-9a-f]{12,32}$"},
}


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


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


class OpenApiDocument(BaseModel):
    """GET /openapi.json: this document (its parts described by the OpenAPI 3.1 schema)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


# With follow=true the answer is a stream of Server-Sent Events; OpenAPI 3.1's `schema` of an
# event stream describes one event.
_SERVER_SENT_EVENT = {
    "type": "object",
    "description": "With follow=true: one Server-Sent Event. Unnamed events carry an item "
    "(a log line, a job event) as JSON in `data`, with its sequence number as `id`; the "
    "stream ends with an `end` event (the job's final status) or a `revoked` one.",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "examples": ["message", "end", "revoked"]},
        "id": {"type": "string"},
        "data": {"type": "string", "description": "JSON"},
        "retry": {"type": "integer"},
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


_BINARY = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}


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
    if operation.enveloped:
        body: dict[str, Any] = {
            "type": "object",
            "required": ["success", "data"],
            "properties": {"success": {"const": True}, "data": data},
            "additionalProperties": False,
        }
        if operation.meta is not None:
            body["required"].append("meta")
            body["properties"]["meta"] = _ref(operation.meta)
    else:
        body = data
    content: dict[str, Any] = {"application/json": {"schema": body}}
    if operation.media_types:
        content = {media_type: _BINARY for media_type in operation.media_types}
    success = {"description": operation.summary, "content": content}
    if operation.query is not None and "follow" in operation.query.model_fields:
        success["content"]["text/event-stream"] = {"schema": _SERVER_SENT_EVENT}
    responses = {str(operation.status): success}
    return _add_errors(responses, operation)


def error_types(operation: Operation) -> list[type[errors.GatewayError]]:
    """Every error the operation can answer: those it declares, and those that follow from
    its shape (a body, a query, a key, the database), each once, by status."""
    found: list[type[errors.GatewayError]] = [*operation.errors, errors.InternalError]
    if operation.request is not None:
        # Bodies are JSON, bounded in size (app.body_limit), and checked field by field.
        found += [errors.ValidationError, errors.UnsupportedMediaType, errors.PayloadTooLarge]
    if operation.query is not None:
        found += [errors.ValidationError]
    if operation.idempotent:
        found += [errors.IdempotencyKeyReused]
    if operation.scopes:
        # Every request with a key counts against its rate (app.rate_limits).
        found += [errors.Unauthorized, errors.Forbidden, errors.RateLimitExceeded]
    elif operation.any_key:
        found += [errors.Unauthorized, errors.RateLimitExceeded]
    if operation.uses_database:
        found += [errors.ServiceUnavailable]
    return sorted(dict.fromkeys(found), key=lambda e: e.status_code)


def _add_errors(responses: dict[str, Any], operation: Operation) -> dict[str, Any]:
    for error_type in error_types(operation):
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


def operations(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, Operation]]:
    """(path under PREFIX, operation) for every documented operation of the table."""
    for route in routes:
        if isinstance(route, ApiRoute):
            for operation in route.operations:
                if operation.documented:
                    yield route.path, operation


def document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The document for the API's route table (the routes mounted at PREFIX)."""
    declared = list(operations(routes))
    request_models = [op.request for _, op in declared if op.request is not None]
    response_models = [op.response for _, op in declared if op.response is not None]
    response_models += [op.meta for _, op in declared if op.meta is not None]
    _, generated = models_json_schema(
        [(model, "validation") for model in request_models]
        + [(model, "serialization") for model in response_models],
        ref_template="#/components/schemas/{model}",
    )
    definitions: dict[str, Any] = dict(generated.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for path, operation in declared:
        parameters: list[dict[str, Any]] = []
        for name in re.findall(r"{(\w+)}", path):
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
        if operation.scopes:
            # OpenAPI 3.1 lets a non-OAuth scheme list the roles an operation needs.
            spec["security"] = [{"bearerAuth": [scope.value for scope in operation.scopes]}]
            spec["description"] = _needs(operation)
        elif operation.any_key:
            spec["security"] = [{"bearerAuth": []}]
            spec["description"] = "Needs an API key, with any scope."
        if operation.request is not None:
            spec["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(operation.request)}},
            }
        elif operation.body_media_types:
            spec["requestBody"] = {
                "required": True,
                "content": {media_type: _BINARY for media_type in operation.body_media_types},
            }
        paths.setdefault(PREFIX + path, {})[operation.method.lower()] = spec
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


def _needs(operation: Operation) -> str:
    names = [f"`{scope.value}`" for scope in operation.scopes]
    if len(names) == 1:
        return f"Needs the {names[0]} scope."
    return f"Needs the {', '.join(names[:-1])} and {names[-1]} scopes."
