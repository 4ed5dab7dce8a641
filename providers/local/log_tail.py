"""One container's log, followed with a single streaming request and held in a bounded buffer
until the engine reads it: every byte the container prints is read from the runtime once.

Reading again from the cursor at each look would not do: podman's log timestamps are whole
seconds, so each read starts over at the cursor's second and a chatty job makes reads
quadratic in what it prints in one second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from providers import log_limits
from providers.errors import HandleNotFound, ProviderError, Unavailable
from providers.local import docker_api, log_frames, log_stream
from providers.local.docker_api import API

# What one container's buffer holds at most; the runtime's stream is not read meanwhile. The
# same bounds one read had when each look was its own request.
MAX_BUFFERED_FRAMES = 40_000
MAX_BUFFERED_BYTES = log_limits.MAX_READ_BYTES


class LogTail:
    """Follows a running container's log (or reads a stopped one's) from a cursor
    ("<timestamp>|<frames taken with it>"): frames at or before it are skipped, the rest are
    buffered for `peek` and `consume`.

    `cursor` is where the buffer's head starts: a reader with another cursor (a restart, a
    batch that was not stored) needs a new tail.
    """

    def __init__(
        self,
        docker_host: str,
        container_id: str,
        name: str,
        cursor: str | None,
        last_stamp: str | None,
        taken: int,
        on_data: Callable[[], None],
        *,
        follow: bool,
    ) -> None:
        self.cursor = cursor
        self.follow = follow
        self._docker_host = docker_host
        self._container_id = container_id
        self._name = name
        self._on_data = on_data
        self._frames: deque[log_frames.Frame] = deque()
        self._bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self._news = asyncio.Event()
        # The stream ended cleanly, or how it failed. A followed stream's end is no proof that
        # everything was read: podman ends it when the container stops, even while its reader
        # is behind. An unfollowed one (of a stopped container) ends at the log's end.
        self.ended = False
        self.error: ProviderError | None = None
        self._task = asyncio.create_task(self._follow(last_stamp, taken))

    @property
    def full(self) -> bool:
        return len(self._frames) >= MAX_BUFFERED_FRAMES or self._bytes >= MAX_BUFFERED_BYTES

    @property
    def empty(self) -> bool:
        return not self._frames

    async def filled(self) -> None:
        """Until the buffer is full or the stream has ended (a final read takes all it can)."""
        while not (self.full or self.ended or self.error is not None):
            self._news.clear()
            await self._news.wait()

    def peek(self) -> list[log_frames.Frame]:
        return list(self._frames)

    def consume(self, count: int, cursor: str | None) -> None:
        """The first `count` frames were taken; the buffer now starts at `cursor`."""
        for _ in range(count):
            self._bytes -= len(self._frames.popleft().text)
        self.cursor = cursor
        if not self.full:
            self._room.set()

    def close(self) -> None:
        self._task.cancel()

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _follow(self, last_stamp: str | None, taken: int) -> None:
        params: dict[str, Any] = {"follow": int(self.follow), "stdout": 1, "stderr": 1}
        params["timestamps"] = 1
        floor = docker_api.parse_time(last_stamp)
        if floor is not None:
            params["since"] = int(floor.timestamp())
        path = f"{API}/containers/{self._container_id}/logs"
        # Runtimes stamp many frames alike (podman: whole seconds): each stamp parsed once.
        stamp_seen: str | None = None
        moment: datetime | None = None
        try:
            async with log_stream.get(self._docker_host, path, params) as response:
                if response.status_code == 404:
                    raise HandleNotFound(f"container {self._name} no longer exists")
                if response.status_code >= 300:
                    answer = httpx.Response(response.status_code, content=await response.aread())
                    docker_api.raise_for_server_error(answer)
                    raise Unavailable(
                        f"reading the log of {self._name} failed: {docker_api.message(answer)}"
                    )
                reader = log_frames.FrameReader()
                async for piece in response.aiter_bytes():
                    for stream, text, dropped in reader.feed(piece):
                        stamp, _, part = text.partition(" ")
                        if stamp == last_stamp and taken > 0:
                            taken -= 1
                            continue
                        if stamp != stamp_seen:
                            stamp_seen, moment = stamp, docker_api.parse_time(stamp)
                        if moment is None or (floor is not None and moment < floor):
                            continue
                        self._frames.append(log_frames.Frame(stream, stamp, moment, part, dropped))
                        self._bytes += len(part)
                    # Announced once per piece read; the buffer may pass its bounds by one
                    # piece (log_stream.READ_SIZE) before the socket stops being read.
                    self._news.set()
                    self._on_data()
                    if self.full:
                        self._room.clear()
                        # Backpressure: the socket is not read while the buffer is full.
                        await self._room.wait()
            self.ended = True
        except ProviderError as exc:
            self.error = exc
        finally:
            self._news.set()
            self._on_data()
