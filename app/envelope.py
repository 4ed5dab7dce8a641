"""The response envelope: {"success": true, "data", "meta"} or {"success": false, "error"}."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic_core import to_json
from starlette.responses import JSONResponse, Response

from app.errors import GatewayError


def utc_iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, to the millisecond: `2026-11-25T14:03:25.123Z`."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
