"""The response envelope: {"success": true, "data", "meta"} or {"success": false, "error"}."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import PlainSerializer, WithJsonSchema
from pydantic_core import to_json
from starlette.responses import JSONResponse, Response

from app.errors import GatewayError


def utc_iso(moment: datetime | None) -> str | None:
    """The one format every time the API shows is in (job JSON, events, logs, SSE, webhooks):
    RFC 3339 in UTC with a `Z`, to the second, as the published contract shows it:
    `2026-11-25T14:03:25Z`. Fractions are cut, never rounded up, so a time shown is never
    later than the moment itself (`since` one of them includes that moment)."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat of the naive UTC time to the second: the same text as strftime, faster.
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


# A time in a response model: serialized by utc_iso, documented as an RFC 3339 date-time.
Timestamp = Annotated[
    datetime,
    PlainSerializer(utc_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-11-25T14:03:25Z"]}),
]


class JSON(Response):
    media_type = "application/json"


def _fallback(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def ok(data: Any, *, meta: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    """Pydantic models (and lists of them) serialize by their aliases, in pydantic's own
    (compiled) serializer, straight to bytes."""
    body: dict[str, Any] = {"success": True, "data": data}
    if meta is not None:
        body["meta"] = meta
    return JSON(to_json(body, by_alias=True, fallback=_fallback), status_code=status_code)


def error(exc: GatewayError, *, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "success": False,
        "error": {"code": exc.code, "message": exc.message, "details": exc.details},
    }
    return JSONResponse(body, status_code=exc.status_code, headers=headers)
