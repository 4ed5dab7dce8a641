"""Reads request bodies and query strings into pydantic models, or a 400 that names each field."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic_core import PydanticCustomError
from starlette.requests import Request

from app import errors

Model = TypeVar("Model", bound=pydantic.BaseModel)


def _integral(value: Any) -> Any:
    """1000.0 -> 1000: JSON has numbers, not integers, so a whole number written with a
    fraction is that integer; 1000.5 is refused, naming the field."""
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise PydanticCustomError(
            "int_from_float", "Input should be a whole number, got {value}", {"value": value}
        )
    return value


# Every integer field of a request body (strict models refuse floats, even 1000.0, otherwise).
Integer = Annotated[int, pydantic.BeforeValidator(_integral)]


def field_path(location: tuple[int | str, ...]) -> str:
    """("ports", 0, "port") -> "ports[0].port"."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _message(error: Any) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    if error["type"] == "missing":
        message = "field required"
    return message


def details_of(
    exc: pydantic.ValidationError, *, prefix: tuple[int | str, ...] = ()
) -> list[dict[str, Any]]:
    return [
        {
            "field": field_path(prefix + tuple(error["loc"])),
            "message": _message(error),
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def parse_json(request: Request, body: bytes, model: type[Model]) -> Model:
    """A request body as `model`: JSON only, every field checked, unknown fields refused.

    Routes read the body before they open a transaction (a slow upload must not hold a
    database connection) and parse it after authorizing the caller.
    """
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise errors.UnsupportedMediaType(
            f"Send the body as JSON with Content-Type: application/json"
            f" (got {content_type or 'no Content-Type'})."
        )
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.ValidationError(
            "The request body is not valid JSON.",
            [{"field": "body", "message": str(exc), "type": "json_invalid"}],
        ) from exc
    if not isinstance(document, dict):
        raise errors.ValidationError(
            "The request body must be a JSON object.",
            [{"field": "body", "message": "expected an object", "type": "model_type"}],
        )
    return validate(model, document, context="request body")


def validate(model: type[Model], data: Any, *, context: str, strict: bool | None = None) -> Model:
    try:
        return model.model_validate(data, strict=strict)
    except pydantic.ValidationError as exc:
        raise errors.ValidationError(f"Invalid {context}.", details_of(exc)) from exc


def validate_query(request: Request, model: type[Model]) -> Model:
    """Query parameters as `model`: each given at most once, unknown ones refused."""
    data: dict[str, str] = {}
    for name in request.query_params:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise errors.ValidationError(
                "Invalid query parameters.", [{"field": name, "message": "give it only once"}]
            )
        data[name] = values[0]
    return validate(model, data, context="query parameters")
