"""What the client raises: one `ApiError` subclass per code of the gateway's error table.

The classes are derived from `app.errors`, the table the server answers from, so a
code the server gains is a class here too. Each has the server class's name:
`except JobNotFound` catches exactly a 404 `JOB_NOT_FOUND`.
"""

from __future__ import annotations

from typing import Any

import httpx

from app import errors as _server


class CortexError(Exception):
    """Anything the client raises."""


class ConnectionFailed(CortexError):
    """The gateway could not be reached (refused, reset, timed out)."""


class ApiError(CortexError):
    """The gateway answered with its error envelope (or with something that is not one)."""

    status_code: int = 0
    code: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: list[dict[str, Any]] | None = None,
        response: httpx.Response | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details or []
        self.response = response

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _derive(server_class: type[_server.GatewayError]) -> type[ApiError]:
    return type(
        server_class.__name__,
        (ApiError,),
        {
            "__doc__": server_class.__doc__,
            "__module__": __name__,
            "status_code": server_class.status_code,
            "code": server_class.code,
        },
    )


BY_CODE: dict[str, type[ApiError]] = {
    cls.code: _derive(cls) for cls in _server.ALL_ERRORS if cls is not _server.GatewayError
}
globals().update({cls.__name__: cls for cls in BY_CODE.values()})


def __getattr__(name: str) -> type[ApiError]:
    """Only reached for names that are not classes of the table; it tells type checkers that
    `errors.JobNotFound` and the other generated names are ApiError classes."""
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def from_response(response: httpx.Response) -> ApiError:
    """The exception for an error answer: the class of its code, or `ApiError` for an answer
    that is not the gateway's envelope (a proxy's page, say)."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details") or []
    except (ValueError, KeyError, TypeError):
        reason = response.reason_phrase or "error"
        return ApiError(
            f"HTTP {response.status_code} {reason} from {response.request.url}",
            code=f"HTTP_{response.status_code}",
            status_code=response.status_code,
            response=response,
        )
    cls = BY_CODE.get(code, ApiError)
    return cls(
        message, code=code, status_code=response.status_code, details=details, response=response
    )


__all__ = [
    "ApiError",
    "ConnectionFailed",
    "CortexError",
    "from_response",
    *(cls.__name__ for cls in BY_CODE.values()),
]
