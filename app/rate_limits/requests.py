"""Holds an authenticated request to its API key's rate, and the RateLimit headers that say
so (draft-ietf-httpapi-ratelimit-headers-10, structured fields) on every API response."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import errors
from app.accounts.lookup import limits_for
from app.rate_limits.limiter import Decision, RateLimiter

# Where a request's decision waits in its ASGI scope for the response to be sent.
_DECISION_KEY = "cortex.rate_limit"
POLICY = "default"


async def limit(
    connection: AsyncConnection, request: Request, key_id: str, account_id: str
) -> None:
    """Counts the request against the key's bucket; raises RateLimitExceeded when empty.

    A stream counts once, here, when it is opened: its events are not requests."""
    limiter: RateLimiter | None = getattr(request.state, "rate_limiter", None)
    if limiter is None:
        return
    limits = await limits_for(connection, account_id, request.state.settings)
    decision = limiter.take(key_id, limits.rate_limit, limits.rate_burst)
    if decision is None:
        return
    request.scope[_DECISION_KEY] = decision
    if decision.retry_after is not None:
        error = errors.RateLimitExceeded(
            f"This API key may make {limits.rate_limit:g} requests per second, in bursts of "
            f"{decision.quota}; retry in {decision.retry_after}s."
        )
        error.retry_after = decision.retry_after
        raise error


def headers(decision: Decision) -> dict[str, str]:
    return {
        "RateLimit-Policy": f'"{POLICY}";q={decision.quota};w={decision.window}',
        "RateLimit": f'"{POLICY}";r={decision.remaining};t={decision.reset}',
    }


class RateLimitHeadersMiddleware:
    """Adds the headers to the response of every request the limiter counted, errors
    included. Pure ASGI, so that streamed responses pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get(_DECISION_KEY)
                if decision is not None:
                    message["headers"] = [
                        *message.get("headers", ()),
                        *(
                            (name.lower().encode(), value.encode())
                            for name, value in headers(decision).items()
                        ),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_headers)
