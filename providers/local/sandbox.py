"""What confines a local job's container: its privileges, process and log limits, its
network, and which registries its image may come from.

The local provider runs tenants' images on the gateway's own host, so nothing here is left to
the runtime's defaults (which keep a dozen capabilities, no process limit and a network that
reaches the host's services).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from providers import _http
from providers.errors import Rejected
from providers.local import docker_api

logger = logging.getLogger(__name__)

# What the tenant is told about any refused or failed pull: the runtime's own words can name
# hosts it probed and files it read, so they go to the operator's log only.
PULL_FAILED = "image could not be pulled"
NO_NETWORK = "none"


def pull_failed(image: str) -> str:
    """The tenant's answer: their own image reference, and nothing the runtime said."""
    return f"{PULL_FAILED}: {image}"


# A missing job network is created with these labels so an operator can tell whose it is.
_NETWORK_LABELS = {"cortex.managed": "true"}

# podman's own API, for what its Docker-compatible one cannot ask (any 4.x serves this).
_LIBPOD = "/v4.0.0/libpod"


def registry_of(image: str) -> str:
    """The registry an image reference pulls from, as Docker reads it: a first component with
    a dot, a colon or `localhost` is a registry; anything else is Docker Hub."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return "docker.io"


def parse_registries(text: str) -> frozenset[str]:
    """`docker.io, ghcr.io` -> {"docker.io", "ghcr.io"}; empty means any registry."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    # Docker Hub answers to several names; an image reference always reads as docker.io.
    if names & {"index.docker.io", "registry-1.docker.io"}:
        names.add("docker.io")
    return frozenset(names)


def image_allowed(image: str, allowed: frozenset[str]) -> bool:
    return not allowed or registry_of(image) in allowed


@dataclass(frozen=True)
class Sandbox:
    network: str
    ports_network: str
    pids_limit: int
    log_max_bytes: int
    log_max_files: int

    def network_for(self, exposes_ports: bool) -> str:
        return self.ports_network if exposes_ports else self.network

    def host_config(self, storage_bytes: int | None) -> dict[str, Any]:
        """The HostConfig fields that confine the container (merged into the job's own)."""
        config: dict[str, Any] = {
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "PidsLimit": self.pids_limit,
            # Without NET_BIND_SERVICE a server could not listen on port 80 in its own
            # network namespace; this sysctl is per namespace, so the host keeps its rule.
            "Sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
            # Options only: the driver stays the runtime's (json-file and local honour both,
            # podman's k8s-file honours max-size, journald neither).
            "LogConfig": {
                "Type": "",
                "Config": {
                    "max-size": str(self.log_max_bytes),
                    "max-file": str(self.log_max_files),
                },
            },
        }
        if storage_bytes:
            config["StorageOpt"] = {"size": str(storage_bytes)}
        return config


def storage_opt_unsupported(response: httpx.Response) -> bool:
    """The runtime refused the writable-layer size because its storage driver cannot enforce
    one (podman: "--storage-opt is supported only for overlay over xfs with 'pquota' mount
    option"; Docker says much the same, with 400 or 500)."""
    if response.status_code < 400:
        return False
    text = docker_api.message(response).lower()
    return "storage-opt" in text or "storage opt" in text or "storageopt" in text


class Networks:
    """Creates each job network the first time a job needs it, once per process."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._ready: set[str] = set()
        self._lock = asyncio.Lock()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with _http.map_http_errors("local"):
            return await self._client.request(method, path, **kwargs)

    async def ensure(self, name: str, *, internal: bool) -> None:
        if name == NO_NETWORK or name in self._ready:
            return
        async with self._lock:
            if name in self._ready:
                return
            found = await self._request("GET", f"{docker_api.API}/networks/{name}")
            if found.status_code == 404:
                await self._create(name, internal=internal)
                found = await self._request("GET", f"{docker_api.API}/networks/{name}")
            docker_api.raise_for_server_error(found)
            if found.status_code == 200:
                _warn_of_a_way_to_the_host(name, found.json())
            self._ready.add(name)

    async def _create(self, name: str, *, internal: bool) -> None:
        if internal:
            # podman gives an internal network a gateway address on the host (where its DNS
            # server listens) unless DNS is off, and the job could reach the host's services
            # there; only its own API can say so. Docker answers 404 to this path.
            created = await self._request(
                "POST",
                f"{_LIBPOD}/networks/create",
                json={
                    "name": name,
                    "driver": "bridge",
                    "internal": True,
                    "dns_enabled": False,
                    "labels": _NETWORK_LABELS,
                },
            )
            if created.status_code != 404 and self._created(name, created, internal):
                return
        created = await self._request(
            "POST",
            f"{docker_api.API}/networks/create",
            json={
                "Name": name,
                "Driver": "bridge",
                "Internal": internal,
                "CheckDuplicate": True,
                "Labels": _NETWORK_LABELS,
            },
        )
        if not self._created(name, created, internal):
            docker_api.raise_for_server_error(created)
            raise Rejected(f"cannot create the job network {name}: {docker_api.message(created)}")

    @staticmethod
    def _created(name: str, response: httpx.Response, internal: bool) -> bool:
        # Another gateway sharing the runtime may have created it a moment before.
        if response.status_code in (200, 201, 409) or "already exists" in response.text:
            logger.info("created the job network %s (internal: %s)", name, internal)
            return True
        return False


def _warn_of_a_way_to_the_host(name: str, info: dict[str, Any]) -> None:
    """An internal network whose gateway address sits on the host lets jobs reach the
    host's services there (Docker's internal networks do): the operator should know."""
    if not info.get("Internal"):
        return
    for config in (info.get("IPAM") or {}).get("Config") or []:
        gateway = config.get("Gateway")
        if gateway and gateway != "<nil>":
            logger.warning(
                "jobs on network %s can reach the host at %s: services listening on every "
                "address are exposed to them unless a firewall rule drops that traffic",
                name,
                gateway,
            )
