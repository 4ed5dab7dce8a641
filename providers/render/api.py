"""The signed HTTP client of Render's compute API, and where its answers become provider
errors. Errors come as `{"error": {"code", "message"}}`."""

from __future__ import annotations

from typing import Any

import httpx

from providers import _http
from providers.errors import NotConfigured, ProviderApiError, Unavailable
from providers.render import signing


class ApiError(ProviderApiError):
    """A 4xx answer the caller decides about (400: refused, 404: unknown, 409: conflict)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        provider: str = "render",
        request: str | None = None,
    ) -> None:
        super().__init__(provider, status, message, request=request)
        self.code = code


class BodyTooLarge(Exception):
    """An answer longer than the caller would read; `head` is what was read of it."""

    def __init__(self, head: bytes) -> None:
        super().__init__(f"answer over {len(head)} bytes")
        self.head = head


class RenderApi:
    def __init__(
        self,
        base_url: str,
        public_key: str,
        secret_key: str,
        *,
        provider: str = "render",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.public_key = public_key
        self._secret_key = secret_key
        self._provider = provider
        self._client = _http.client(base_url.rstrip("/"), transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        max_bytes: int | None = None,
    ) -> Any:
        """One signed request; the JSON answer. A fresh nonce and timestamp every time, so a
        caller may simply call again after an Unavailable. `max_bytes`: a successful answer
        longer than this is not read further; BodyTooLarge carries its head."""
        query = signing.canonical_query(params)
        content = signing.canonical_json(body) if body is not None else b""
        headers = signing.signed_headers(
            self.public_key, self._secret_key, method, path, query, content
        )
        headers["Accept"] = "application/json"
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = f"{path}?{query}" if query else path
        request = self._client.build_request(method, url, content=content, headers=headers)
        with _http.map_http_errors(self._provider):
            response = await self._client.send(request, stream=True)
            try:
                head = bytearray()
                async for chunk in response.aiter_bytes():
                    head += chunk
                    if max_bytes is not None and len(head) > max_bytes:
                        if response.status_code < 400:
                            raise BodyTooLarge(bytes(head[:max_bytes]))
                        break
            finally:
                await response.aclose()
        # A response of what was read (already decoded), for .json() and .text: the streamed
        # one is closed.
        kept = [
            (name, value)
            for name, value in response.headers.items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        response = httpx.Response(
            response.status_code, headers=kept, content=bytes(head), request=request
        )
        if response.status_code < 400:
            return response.json() if response.content else None
        code, message = _error_of(response)
        if response.status_code in (401, 403):
            raise NotConfigured(f"{self._provider}: Render refused the API key: {message}")
        if response.status_code == 429 or response.status_code >= 500:
            raise Unavailable(
                f"{self._provider}: Render answered {response.status_code}: {message}"
            )
        raise ApiError(
            response.status_code, code, message, provider=self._provider, request=f"{method} {path}"
        )


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
        return str(error.get("code") or response.status_code), str(
            error.get("message") or response.text
        )
    except (ValueError, AttributeError):
        return str(response.status_code), response.text[:500]
