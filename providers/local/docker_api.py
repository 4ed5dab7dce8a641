"""The Docker Engine API as the local provider speaks it: httpx over a unix socket (or TCP),
and the small readings of its answers that every call needs."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from providers.errors import Unavailable

API = "/v1.41"
# Streams that stay open as long as there is something to follow.
STREAMING = httpx.Timeout(None, connect=5.0, pool=5.0)
# What an operator does about an unreachable runtime (the providers API shows it).
REMEDY = (
    ": start Docker there, or podman's Docker API service (`podman system service --time=0"
    " unix:///run/podman.sock`; as root `scripts/container-runtime` installs and starts it) and"
    " restart the gateway with DOCKER_HOST set to its socket (`scripts/serve` does both)"
)


def parse_time(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-01-01"):
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())[:6]
    moment = datetime.fromisoformat(head + (f".{fraction}" if fraction else ""))
    return moment.replace(tzinfo=UTC)


def transport(docker_host: str, max_connections: int) -> tuple[str, httpx.AsyncHTTPTransport]:
    """The base URL and transport for DOCKER_HOST (`unix:///path` or `tcp://host:port`). The
    pool limits belong to the transport: httpx ignores a client's limits when given one."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=min(max_connections, 64)
    )
    if docker_host.startswith("tcp://"):
        base = "http://" + docker_host.removeprefix("tcp://")
        return base, httpx.AsyncHTTPTransport(limits=limits)
    socket = docker_host.removeprefix("unix://")
    return "http://docker", httpx.AsyncHTTPTransport(uds=socket, limits=limits)


def split_image(image: str) -> tuple[str, str]:
    """`repo:tag` -> (repo, tag); a digest or no tag pulls as given."""
    if "@" in image:
        return image, ""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, "latest"
    return name, tag


def message(response: httpx.Response) -> str:
    """The runtime's own words for an error answer."""
    try:
        return str(response.json().get("message") or response.text)
    except ValueError:
        return response.text


def raise_for_server_error(response: httpx.Response) -> None:
    """A 5xx is the runtime's trouble, not the job's: worth trying again."""
    if response.status_code >= 500:
        raise Unavailable(f"container runtime error: {message(response)}")


def name_in_use(response: httpx.Response) -> bool:
    """podman answers a name clash with 500 "...is already in use" where Docker says 409."""
    return response.status_code == 500 and "already in use" in response.text
