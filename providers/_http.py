"""What every adapter's HTTP client shares: timeouts, a user agent, and the boundary where
httpx's exceptions become provider errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata

import httpx

from providers.errors import Unavailable


def _version() -> str:
    # The distribution's version: providers/ never imports app/, where __version__ lives.
    try:
        return metadata.version("cortex-gateway")
    except metadata.PackageNotFoundError:
        return "unknown"


USER_AGENT = f"cortex-gateway/{_version()}"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def client(
    base_url: str, *, transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 100
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        timeout=DEFAULT_TIMEOUT,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=32),
    )


@contextmanager
def map_http_errors(provider: str) -> Iterator[None]:
    """Transport failures become Unavailable (the caller may retry), chained to the cause."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise Unavailable(f"{provider}: timed out talking to the network ({exc!r})") from exc
    except httpx.TransportError as exc:
        raise Unavailable(f"{provider}: cannot reach the network: {exc}") from exc
