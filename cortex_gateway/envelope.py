"""The response envelope: {"success": true, "data", "meta"} or {"success": false, "error"}."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse

from cortex_gateway.errors import GatewayError


def utc_iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, to the millisecond: `2026-11-25T14:03:25.123Z`."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


def ok(data: Any, *, meta: dict[str, Any] | None = None, status_code: int = 200) -> JSONResponse:
    body: dict[str, Any] = {"success": True, "data": _jsonable(data)}
    if meta is not None:
        body["meta"] = meta
    return JSONResponse(body, status_code=status_code)


def error(exc: GatewayError, *, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "success": False,
        "error": {"code": exc.code, "message": exc.message, "details": exc.details},
    }
    return JSONResponse(body, status_code=exc.status_code, headers=headers)
