"""Keeps webhooks from reaching into the gateway's own network (SSRF).

A URL must be http(s), and every address its host resolves to must be public, unless it lies
in a network the operator allowed (CORTEX_WEBHOOK_ALLOWED_NETWORKS). The check runs when an
endpoint is registered and again before every send, and the send then goes to the address
that was checked, so a DNS answer that changes in between cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048


class UnsafeURL(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    """Where to send: the checked address, and the host name for Host and TLS."""

    url: str
    host: str
    address: str
    port: int

    @property
    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        parts = urlsplit(self.url)
        address = f"[{self.address}]" if ":" in self.address else self.address
        netloc = f"{address}:{self.port}"
        return parts._replace(netloc=netloc).geturl()


def parse_networks(text: str) -> tuple[Network, ...]:
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


def _forbidden(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _forbidden(address.ipv4_mapped)
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def check_syntax(url: str) -> tuple[str, int]:
    """The host and port of an acceptable URL; UnsafeURL says why one is not."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise UnsafeURL("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeURL("credentials in the URL are not allowed; use the signing secret")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("the URL's port is not valid") from exc
    return parts.hostname, port


async def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass  # a name, not an address literal
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURL(f"the host {host} does not resolve") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def resolve(url: str, allowed: Sequence[Network]) -> Target:
    """Check `url` and pick the address to send to."""
    host, port = check_syntax(url)
    addresses = await _addresses(host, port)
    for address in addresses:
        if _forbidden(address) and not any(address in network for network in allowed):
            raise UnsafeURL(
                f"{host} resolves to {address}, a loopback, private, link-local or reserved "
                "address; webhooks may only reach public addresses"
            )
    return Target(url=url, host=host, address=str(addresses[0]), port=port)
