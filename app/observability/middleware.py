"""Per-request context: the request id (taken from `X-Request-ID` or made, and echoed in
the response), the job id of a job's URL, the app's metrics, and the count of open streams."""

from __future__ import annotations

import os
import re
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import logs, tracing
from app.observability import metrics as metrics_module
from app.observability.metrics import GatewayMetrics

REQUEST_ID_HEADER = "X-Request-ID"
_JOB_PATH = re.compile(r"/jobs/(job_[0-9a-f]{1,64})(?:/|$)")


class RequestContextMiddleware:
    """Pure ASGI, so that streamed responses pass through untouched.

    The context variables are set, not reset: under a server each request runs in a task of
    its own, and the error handler that logs an unexpected exception runs after this
    middleware has returned, still in that task, so its line carries the request id too."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = logs.acceptable_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        # 128 random bits as 32 hex digits, as uuid4().hex gave, without building a UUID.
        request_id = request_id or os.urandom(16).hex()
        logs.request_id.set(request_id)
        job = _JOB_PATH.search(scope["path"])
        logs.bind_job(job.group(1) if job else None)
        metrics_module.bind(self.metrics)
        streaming = False
        status: int | None = None
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal streaming, status
            if message["type"] == "http.response.start":
                status = message["status"]
                # (While the request's span is open: it may end with the last of the body.)
                tracing.name_request(scope["method"], route_template(scope))
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                if headers.get("content-type", "").startswith("text/event-stream"):
                    streaming = True
                    self.metrics.sse_streams.inc()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if streaming:
                self.metrics.sse_streams.dec()
            # No answer went out through here: the error handler outside answers 500.
            self.metrics.request_answered(
                scope["method"],
                route_template(scope),
                status or 500,
                time.perf_counter() - started,
                stream=streaming,
            )


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/plugin-core/jobs/{job_id}`), never the
    path itself, so that the metric's series stay few; `unmatched` for no route."""
    path = getattr(scope.get("route"), "path", None)
    if path is None:
        return "unmatched"
    mounted = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    return f"{mounted}{path}"
