"""Refuses request bodies over the configured size with the error envelope.

Starlette's own limit answers in plain text; ours answers 413 PAYLOAD_TOO_LARGE like every
other error, before reading a byte when Content-Length already says too much.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import envelope, errors


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, unbounded: re.Pattern[str] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Paths whose handler bounds the body itself (an output upload, by its own limit).
        self.unbounded = unbounded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.unbounded and self.unbounded.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise errors.PayloadTooLarge(self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"The request body is over the limit of {self.max_body_bytes} bytes."

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = envelope.error(errors.PayloadTooLarge(self._message()))
        response.headers["connection"] = "close"
        await response(scope, receive, send)
