"""The yagna daemon's REST APIs (market, activity, payment) and the Golem registry's image
lookup, as thin calls that return the decoded body or raise `YagnaError`.

Paths and bodies follow golemfactory/ya-client specs/*-api.yaml; transport failures become
`Unavailable` here, at the boundary (the adapter translates status codes by context).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from providers import _http
from providers.errors import ProviderApiError, Unavailable

MARKET = "/market-api/v1"
ACTIVITY = "/activity-api/v1"
PAYMENT = "/payment-api/v1"
PROVIDER = "golem"


class YagnaError(ProviderApiError):
    """The daemon answered an error status; `message` is its ErrorMessage."""

    def __init__(self, status: int, message: str, *, request: str | None = None) -> None:
        super().__init__(PROVIDER, status, message, request=request)

    @property
    def provider_unreachable(self) -> bool:
        """yagna reports a provider that left the network as a GSB routing error."""
        text = self.message.lower()
        return "endpoint address not found" in text or "gsb error" in text


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body)


class Yagna:
    def __init__(
        self,
        api_url: str,
        app_key: str | None,
        registry_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = _http.client(api_url, transport=transport)
        if app_key:
            self._client.headers["Authorization"] = f"Bearer {app_key}"
        self._registry = _http.client(registry_url, transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._registry.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        wait: float = 0.0,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        """One request; `wait` is how long the daemon may hold a long-poll open."""
        timeout = httpx.Timeout((_http.DEFAULT_TIMEOUT.read or 0.0) + wait, connect=5.0)
        with _http.map_http_errors(PROVIDER):
            response = await self._client.request(
                method, path, json=json_body, params=params, timeout=timeout
            )
        if response.status_code not in ok:
            if response.status_code == 401:
                raise Unavailable("golem: yagna refused the app key (401); check it")
            raise YagnaError(response.status_code, _message(response), request=f"{method} {path}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise Unavailable(f"golem: yagna answered {path} with non-JSON") from exc

    @asynccontextmanager
    async def stream(self, path: str) -> AsyncIterator[httpx.Response]:
        """A Server-Sent Events response, left open (no read timeout: pings keep it alive
        every 15 s, and the caller bounds its own wait)."""
        with _http.map_http_errors(PROVIDER):
            async with self._client.stream(
                "GET",
                path,
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(None, connect=5.0),
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise YagnaError(
                        response.status_code, _message(response), request=f"GET {path}"
                    )
                yield response

    async def image(self, reference: str) -> dict[str, Any] | None:
        """The registry's {"http": url, "sha3": hash} for a tag or a hash; None if unknown."""
        key = "hash" if _looks_like_hash(reference) else "tag"
        with _http.map_http_errors(PROVIDER):
            response = await self._registry.get(
                "/v1/image/info", params={key: reference.removeprefix("sha3:"), "count": "true"}
            )
        if response.status_code in (400, 404):
            return None
        if response.status_code != 200:
            raise Unavailable(f"golem: the image registry answered {response.status_code}")
        try:
            info: dict[str, Any] = response.json()
        except ValueError as exc:
            raise Unavailable("golem: the image registry answered non-JSON") from exc
        return info


def _looks_like_hash(reference: str) -> bool:
    text = reference.removeprefix("sha3:")
    return reference.startswith("sha3:") or (
        len(text) in (56, 64) and all(c in "0123456789abcdef" for c in text.lower())
    )


def parse_sse(lines: list[str]) -> tuple[str | None, str | None]:
    """One SSE frame (its lines) -> (event name, data); comments such as `:ping` ignored."""
    event, data = None, []
    for line in lines:
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    return event, "\n".join(data) if data else None


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
