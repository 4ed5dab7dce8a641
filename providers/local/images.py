"""Pulling a job's image when the runtime does not have it, in the background: the runtime's
`POST /images/create` answers a JSON progress stream, read while the job waits, so that the
job can say how far its pull is ("pulling image busybox:latest: 1.3 MB of 5.3 MB").

Jobs on the same missing image share one pull. A job whose image is being pulled has a
*pulling handle*: what creating its container needs (its spec), and no container yet; the
status look creates the container once the pull has finished. The handle is stored with the
job, so a gateway restarted mid-pull creates the container, or pulls again, from it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import time
from typing import Any

import httpx

from providers import _http
from providers.errors import ImagePullFailed, Unavailable
from providers.local import docker_api, sandbox
from providers.local.docker_api import API
from providers.types import GpuSpec, Handle, PortSpec, VolumeSpec, WorkloadSpec

logger = logging.getLogger(__name__)

# The handle's key naming the image a job waits for (only a pulling handle has it).
PULLING = "pullingImage"
# A pull is a long answer: the registry may be slow, the image large.
PULL_TIMEOUT = httpx.Timeout(600.0, connect=5.0, pool=5.0)
# The progress a job's message shows is refreshed at most this often: each change of the
# message is a write (and, throttled further, an event).
PROGRESS_EVERY_SECONDS = 2.0
# A finished pull is remembered this long, so that every job that waited for it learns its
# outcome; a job submitted later pulls again (a registry that failed may answer now).
FINISHED_KEPT_SECONDS = 60.0


def is_pulling(handle: Handle) -> bool:
    return PULLING in handle


def pulling_handle(spec: WorkloadSpec, name: str, volumes: list[str]) -> Handle:
    """The handle of a job whose container waits for its image. It holds the spec (as the
    Akash adapter's holds the manifest): its container is created from it later, perhaps by
    another process."""
    return {
        PULLING: spec.image,
        "containerName": name,
        "volumes": volumes,
        "spec": dataclasses.asdict(spec),
    }


def spec_of(handle: Handle) -> WorkloadSpec:
    fields: dict[str, Any] = dict(handle["spec"])
    fields["ports"] = tuple(PortSpec(**port) for port in fields.get("ports", ()))
    fields["volumes"] = tuple(VolumeSpec(**volume) for volume in fields.get("volumes", ()))
    for name in ("command", "args"):
        if fields.get(name) is not None:
            fields[name] = tuple(fields[name])
    if fields.get("gpu") is not None:
        fields["gpu"] = GpuSpec(**fields["gpu"])
    return WorkloadSpec(**fields)


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


class Pull:
    """One image's pull: the runtime's progress stream read to its end in a task."""

    def __init__(self, client: httpx.AsyncClient, provider: str, image: str) -> None:
        self.image = image
        self._client = client
        self._provider = provider
        # layer id -> (bytes downloaded, bytes in all), as the runtime last reported them.
        self._layers: dict[str, tuple[int, int]] = {}
        self._shown = f"pulling image {image}"
        self._shown_at = 0.0
        self.finished_at: float | None = None
        self.task = asyncio.create_task(self._run())

    @property
    def message(self) -> str:
        """The job's waiting message: what has been downloaded of what the runtime knows."""
        return self._shown

    @property
    def done(self) -> bool:
        return self.task.done()

    def failure(self) -> ImagePullFailed | None:
        """Why the pull failed, in the runtime's own words (for the operator's log only)."""
        if not self.task.done() or self.task.cancelled():
            return ImagePullFailed(f"pulling {self.image} was interrupted")
        error = self.task.exception()
        if error is None:
            return None
        if isinstance(error, ImagePullFailed):
            return error
        return ImagePullFailed(f"pulling {self.image} failed: {error!r}")

    async def _run(self) -> None:
        try:
            await self._pull()
        finally:
            self.finished_at = time.monotonic()

    async def _pull(self) -> None:
        name, tag = docker_api.split_image(self.image)
        params = {"fromImage": name}
        if tag:
            params["tag"] = tag
        error: str | None = None
        # The answer's last lines, for an error the stream does not name.
        lines: collections.deque[str] = collections.deque(maxlen=5)
        try:
            with _http.map_http_errors(self._provider):
                async with self._client.stream(
                    "POST", API + "/images/create", params=params, timeout=PULL_TIMEOUT
                ) as response:
                    async for line in response.aiter_lines():
                        lines.append(line)
                        error = self._read(line) or error
        except Unavailable as exc:
            raise ImagePullFailed(f"pulling {self.image} failed: {exc}") from exc
        if response.status_code != 200 or error:
            raise ImagePullFailed(f"pulling {self.image} failed: {error or ' '.join(lines)}")

    def _read(self, line: str) -> str | None:
        """Note one line of the progress stream; returns its error, if it reports one."""
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        if event.get("error"):
            return str(event["error"])
        detail = event.get("progressDetail") or {}
        layer = event.get("id")
        if layer and isinstance(detail.get("total"), int) and detail["total"] > 0:
            self._layers[str(layer)] = (int(detail.get("current") or 0), detail["total"])
        elif layer and str(layer) in self._layers and event.get("status") == "Download complete":
            total = self._layers[str(layer)][1]
            self._layers[str(layer)] = (total, total)
        now = time.monotonic()
        if self._layers and now - self._shown_at >= PROGRESS_EVERY_SECONDS:
            current = sum(done for done, _ in self._layers.values())
            total = sum(size for _, size in self._layers.values())
            self._shown = (
                f"pulling image {self.image}: {_megabytes(current)} of {_megabytes(total)}"
            )
            self._shown_at = now
        return None


class Pulls:
    """The pulls under way (and those just finished), one per image."""

    def __init__(self, client: httpx.AsyncClient, provider: str) -> None:
        self._client = client
        self._provider = provider
        self._pulls: dict[str, Pull] = {}

    def get(self, image: str) -> Pull | None:
        pull = self._pulls.get(image)
        if (
            pull is not None
            and pull.finished_at is not None
            and time.monotonic() - pull.finished_at > FINISHED_KEPT_SECONDS
        ):
            del self._pulls[image]
            return None
        return pull

    def start(self, image: str) -> Pull:
        """The image's pull under way, or a new one."""
        pull = self.get(image)
        if pull is None or pull.done:
            pull = self._pulls[image] = Pull(self._client, self._provider, image)
        return pull

    async def finished(self, pull: Pull, wait: float, job_id: str) -> bool:
        """Whether the pull has finished, waiting for it up to `wait` seconds. A failed pull
        raises ImagePullFailed saying only which image (the tenant sees it); the runtime's
        words go to the operator's log."""
        if not pull.done and wait > 0:
            await asyncio.wait({pull.task}, timeout=wait)
        if not pull.done:
            return False
        failure = pull.failure()
        if failure is not None:
            logger.warning("job %s: %s", job_id, failure)
            raise ImagePullFailed(sandbox.pull_failed(pull.image))
        return True

    async def wait(self, image: str, max_wait: float) -> None:
        """Until the image's pull finishes, at most `max_wait` seconds (at once if it has:
        the job's container is due)."""
        pull = self.get(image)
        if pull is None:
            await asyncio.sleep(max_wait)
        elif not pull.done:
            await asyncio.wait({pull.task}, timeout=max_wait)

    async def aclose(self) -> None:
        tasks = [pull.task for pull in self._pulls.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pulls.clear()
