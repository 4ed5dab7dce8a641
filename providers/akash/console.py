"""The Akash Console API (managed wallet) over httpx: `x-api-key`, bodies wrapped in
`{"data": ...}`, retries with backoff on network errors, 429 and 5xx (honouring
Retry-After), and Console's error bodies turned into `ConsoleError`."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections import Counter
from typing import Any

import httpx

from providers import _http
from providers.errors import NotConfigured, ProviderApiError, Unavailable

logger = logging.getLogger(__name__)

PROVIDER = "akash"
# Attempts per call, and the longest pause between two (a Retry-After asking for more
# turns the call into Unavailable: the engine retries later).
ATTEMPTS = 4
MAX_RETRY_DELAY = 30.0
# Creating a lease sends the manifest to the provider; Console allows 20-60 s for it.
LEASE_TIMEOUT = httpx.Timeout(120.0, connect=5.0)
_RETRIED_STATUSES = {429, 500, 502, 503, 504}


class ConsoleError(ProviderApiError):
    """Console answered a client error; `message` is Console's own, `code` its error code."""

    def __init__(self, status: int, code: str, message: str, *, request: str | None = None) -> None:
        super().__init__(PROVIDER, status, message, request=request)
        self.code = code

    @property
    def bid_not_open(self) -> bool:
        return "bid is no longer open" in self.message or "bid not open" in self.message

    @property
    def order_not_open(self) -> bool:
        return "order has already been matched or closed" in self.message or (
            "order not open" in self.message
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # a proxy's malformed header: back off as usual
    return max(moment.timestamp() - time.time(), 0.0)


def _error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from Console's error body, or from a proxy's non-JSON page."""
    try:
        body = response.json()
    except ValueError:
        return "unknown_error", response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("code") or body.get("error") or "unknown_error"), str(
            body.get("message") or body.get("error") or response.reason_phrase
        )
    return "unknown_error", str(body)[:200]


class Console:
    def __init__(self, base_url: str, api_key: str, *, retry_delay: float = 1.0) -> None:
        self.retry_delay = retry_delay
        self._client = _http.client(base_url.rstrip("/"))
        self._client.headers["x-api-key"] = api_key
        # Requests sent, by route, for benchmarks and operators.
        self.sent: Counter[str] = Counter()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        route: str | None = None,
        attempts: int = ATTEMPTS,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> Any:
        """The response body, unwrapped from `{"data": ...}` when wrapped. Raises
        ConsoleError for a 4xx, NotConfigured for a refused key, Unavailable when the
        network does not answer or keeps failing. A call that is not `idempotent` is only
        repeated after a 429 (refused before any work); a lost answer or a 5xx may mean it
        took effect, so it raises Unavailable at once for the caller to find out."""
        delay = self.retry_delay
        for attempt in range(1, attempts + 1):
            self.sent[route or f"{method} {path}"] += 1
            try:
                with _http.map_http_errors(PROVIDER):
                    response = await self._client.request(method, path, **kwargs)
            except Unavailable:
                if attempt == attempts or not idempotent:
                    raise
                await asyncio.sleep(delay * (1 + random.random() / 4))
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            if response.status_code < 400:
                body = response.json() if response.content else None
                if isinstance(body, dict) and set(body) == {"data"}:
                    return body["data"]
                return body
            code, message = _error(response)
            if response.status_code in _RETRIED_STATUSES:
                wait = _retry_after(response)
                last = attempt == attempts or (response.status_code != 429 and not idempotent)
                if last or (wait is not None and wait > MAX_RETRY_DELAY):
                    raise Unavailable(
                        f"akash: Console answered {response.status_code} to {method} {path}: "
                        f"{message}"
                    )
                await asyncio.sleep(wait if wait is not None else delay * (1 + random.random() / 4))
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            if response.status_code == 401:
                raise NotConfigured(f"akash: Console refused the API key: {message}")
            raise ConsoleError(response.status_code, code, message, request=f"{method} {path}")
        raise AssertionError("unreachable")
