"""A workload's output directory, read through the runtime's archive API before its
container is removed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import ClassVar

import httpx

from providers import _http
from providers.base import OUTPUT_PATH
from providers.errors import HandleNotFound, Rejected
from providers.local import docker_api, images
from providers.local.docker_api import API
from providers.types import Handle

EMPTY_ARCHIVE_RETRIES, EMPTY_ARCHIVE_PAUSE = 10, 0.2


async def read_output(
    client: httpx.AsyncClient, handle: Handle, write: Callable[[bytes], Awaitable[None]]
) -> bool:
    """Stream the tar of OUTPUT_PATH (`GET /containers/{id}/archive?path=...`, entries under
    `output/`) into `write`; False when the container has no such directory.

    Right after a container exits, podman may answer 200 with an empty body while it cleans
    the container up: such an answer (nothing was written yet) is asked again."""
    if await _left_nothing(client, handle):
        return False
    for _ in range(EMPTY_ARCHIVE_RETRIES):
        received = await _read_once(client, handle, write)
        if received is None:
            return False
        if received:
            return True
        await asyncio.sleep(EMPTY_ARCHIVE_PAUSE)
    raise Rejected("the container runtime handed over an empty archive of the output")


async def _left_nothing(client: httpx.AsyncClient, handle: Handle) -> bool:
    """True when the container's own filesystem layer proves the workload left nothing in
    OUTPUT_PATH: the gateway added the directory there before the start, no mount covers it,
    and no path beneath it changed since. Most jobs leave nothing, and reading an archive
    costs podman 100-250 ms (it mounts the stopped container) where these two answers cost a
    few. Whenever they prove nothing, the archive is read."""
    container = f"{API}/containers/{handle['containerId']}"
    inspected, changed = await asyncio.gather(
        client.get(f"{container}/json"), client.get(f"{container}/changes")
    )
    if inspected.status_code != 200 or changed.status_code != 200:
        return False  # the archive read says what is wrong
    try:
        mounts = [str(mount["Destination"]) for mount in inspected.json().get("Mounts") or ()]
        paths = {str(change["Path"]) for change in changed.json() or ()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return False
    beneath = OUTPUT_PATH + "/"
    if any(_covers(mount, OUTPUT_PATH) or mount.startswith(beneath) for mount in mounts):
        return False  # a volume's files are not in the container's layer
    return OUTPUT_PATH in paths and not any(path.startswith(beneath) for path in paths)


def _covers(mount: str, path: str) -> bool:
    mount = mount.rstrip("/") or "/"
    return path == mount or path.startswith(mount if mount == "/" else mount + "/")


async def _read_once(
    client: httpx.AsyncClient, handle: Handle, write: Callable[[bytes], Awaitable[None]]
) -> int | None:
    """Bytes streamed into `write`; None when there is no output directory."""
    path = f"{API}/containers/{handle['containerId']}/archive"
    received = 0
    async with client.stream(
        "GET", path, params={"path": OUTPUT_PATH}, timeout=docker_api.STREAMING
    ) as response:
        if response.status_code != 200:
            body = await response.aread()
            if response.status_code == 404:
                if _says_no_container(body):
                    raise HandleNotFound(f"container {handle['containerName']} no longer exists")
                return None
            docker_api.raise_for_server_error(response)
            raise Rejected(f"the output could not be read: {docker_api.message(response)}")
        async for chunk in response.aiter_raw():
            received += len(chunk)
            await write(chunk)
    return received


def _says_no_container(body: bytes) -> bool:
    """podman and Docker answer 404 both for a missing container and a missing path."""
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        return False
    # Docker: "No such container: x"; podman: "no container with name or ID ...: no such container".
    return "no such container" in message.lower()


class ArchiveOutputs:
    """The local adapter's `output()`: its container's output directory, through the archive
    API (a mixin, so that the adapter's module stays about its lifecycle)."""

    collects_outputs: ClassVar[bool] = True
    name: ClassVar[str]
    _client: httpx.AsyncClient

    async def output(self, handle: Handle, write: Callable[[bytes], Awaitable[None]]) -> bool:
        if images.is_pulling(handle):
            return False  # ended before its container was created
        with _http.map_http_errors(self.name):
            return await read_output(self._client, handle, write)
