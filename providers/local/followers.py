"""The doorbells: the runtime's event stream and each running container's output, followed so
that a watch wakes the moment something happens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import httpx

from providers.local.docker_api import API, STREAMING

logger = logging.getLogger(__name__)

# How long a death seen on the event stream is remembered for a watch that starts late.
RECENT_DEATH_SECONDS = 60.0
MIN_WAKE_SECONDS = 0.05
# Most jobs that end within their first second are still seen running by the first look, and
# podman tells of the exit late (its `die` event and the end of the output stream come 0.1-0.5 s
# after an inspect says so). For this long after a container is first seen running, its watch
# ends every YOUNG_RECHECK_SECONDS and its status is inspected, not taken from memory; at most
# MAX_YOUNG containers at once, so a burst of starts costs the runtime a bounded rate.
YOUNG_SECONDS = 1.0
YOUNG_RECHECK_SECONDS = 0.025
MAX_YOUNG = 16


class Doorbells:
    """Wake the watch of a container as soon as it starts, prints or dies, so that logs are
    live and exits are noticed at once, without polling.

    Deaths come from one Docker `/events` stream per adapter; output from one following
    `logs` request per running container, read only as a signal (the engine reads the lines
    themselves with a cursor). Both are cheap for the runtime, unlike a blocking `wait` per
    container. While a stream is down, watches simply time out and the engine polls.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        # Counts the event stream's connections; None while it is down. A status inspected
        # under one connection stays true only while that connection lasts.
        self._generation = 0
        self._live: int | None = None
        # Containers that something happened to since their last inspect, and that printed
        # since their last log read (both kept only for the quiet-look shortcuts).
        self._stirred: set[str] = set()
        self._printed: set[str] = set()
        self._bells: dict[str, asyncio.Event] = {}
        self._woken_at: dict[str, float] = {}
        self._log_followers: dict[str, asyncio.Task[None]] = {}
        self._deaths: dict[str, float] = {}
        self._young: dict[str, float] = {}  # first seen running at (monotonic)
        self._exit_codes: dict[str, int] = {}
        self._events: asyncio.Task[None] | None = None

    def expect(self, container_id: str) -> None:
        """The container is about to start: ring when it does."""
        self._follow_events()
        self._bells.setdefault(container_id, asyncio.Event())

    def running(self, container_id: str) -> None:
        """The container runs: ring when it prints."""
        self._follow_events()
        if container_id not in self._log_followers:
            now = time.monotonic()
            self._young = {c: t for c, t in self._young.items() if now - t < YOUNG_SECONDS}
            if len(self._young) < MAX_YOUNG:
                self._young[container_id] = now
        follower = self._log_followers.get(container_id)
        if follower is None or follower.done():
            self._bells.setdefault(container_id, asyncio.Event())
            self._log_followers[container_id] = asyncio.create_task(self._follow_logs(container_id))

    def forget(self, container_id: str) -> None:
        follower = self._log_followers.pop(container_id, None)
        if follower is not None:
            follower.cancel()
        self._bells.pop(container_id, None)
        self._woken_at.pop(container_id, None)
        self._stirred.discard(container_id)
        self._printed.discard(container_id)
        self._young.pop(container_id, None)

    def looking(self, container_id: str) -> int | None:
        """An inspect of the container starts now: returns the event stream's generation
        (None while it is down). Anything rung from here on counts as news after it."""
        self._stirred.discard(container_id)
        return self._live

    def unchanged(self, container_id: str, generation: int) -> bool:
        """Nothing happened to the container since it was inspected under `generation`, as
        far as the streams can tell: the same event stream is still connected, no event or
        output rang, and its output is still followed."""
        return (
            self._live == generation
            and not self._is_young(container_id)
            and container_id not in self._stirred
            and container_id not in self._deaths
            and self._following(container_id)
        )

    def ring(self, container_id: str) -> None:
        """The container printed (seen by its log's tail)."""
        self._printed.add(container_id)
        self._ring(container_id)

    def reading(self, container_id: str) -> None:
        """A read of the container's log starts now."""
        self._printed.discard(container_id)

    def silent(self, container_id: str) -> bool:
        """The container printed nothing since its log was last read (its output is
        followed, so it would have rung)."""
        return container_id not in self._printed and self._following(container_id)

    def _is_young(self, container_id: str) -> bool:
        first_seen = self._young.get(container_id)
        return first_seen is not None and time.monotonic() - first_seen < YOUNG_SECONDS

    def _following(self, container_id: str) -> bool:
        follower = self._log_followers.get(container_id)
        return follower is not None and not follower.done()

    async def wait(self, container_id: str, max_wait: float, *, running: bool) -> None:
        """Until the container starts, prints or dies, at most `max_wait` seconds. `running`:
        it was last seen running, so a death seen since means it changed."""
        self._follow_events()
        if running and container_id in self._deaths:
            return
        if running and self._is_young(container_id):
            max_wait = min(max_wait, YOUNG_RECHECK_SECONDS)
        bell = self._bells.setdefault(container_id, asyncio.Event())
        try:
            async with asyncio.timeout(max_wait):
                await bell.wait()
        except TimeoutError:
            return
        bell.clear()
        # A chatty container wakes the engine at most this often; its lines are read in
        # batches. A death ends the wait at once.
        since = time.monotonic() - self._woken_at.get(container_id, 0.0)
        if since < MIN_WAKE_SECONDS and container_id not in self._deaths:
            await asyncio.sleep(MIN_WAKE_SECONDS - since)
        self._woken_at[container_id] = time.monotonic()

    async def aclose(self) -> None:
        tasks = [t for t in [self._events, *self._log_followers.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._log_followers.clear()

    def _ring(self, container_id: str) -> None:
        self._stirred.add(container_id)
        bell = self._bells.get(container_id)
        if bell is not None:
            bell.set()

    def _follow_events(self) -> None:
        if self._events is None or self._events.done():
            self._events = asyncio.create_task(self._read_events())

    async def _read_events(self) -> None:
        delay = 0.5
        params = {"filters": json.dumps({"type": ["container"]})}
        while True:
            try:
                async with self._client.stream(
                    "GET", API + "/events", params=params, timeout=STREAMING
                ) as response:
                    if response.status_code == 200:
                        delay = 0.5
                        self._generation += 1
                        self._live = self._generation
                        async for line in response.aiter_lines():
                            self._seen(line)
            except httpx.HTTPError as exc:
                logger.info("the container runtime's event stream broke: %s", exc)
            finally:
                self._live = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _seen(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        action = event.get("Action")
        if action not in ("start", "die"):
            return
        container_id = event.get("id") or (event.get("Actor") or {}).get("ID")
        if not container_id:
            return
        if action == "die":
            now = time.monotonic()
            self._deaths = {
                cid: at for cid, at in self._deaths.items() if now - at < RECENT_DEATH_SECONDS
            }
            self._deaths[container_id] = now
            self._exit_codes = {
                cid: code for cid, code in self._exit_codes.items() if cid in self._deaths
            }
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self._exit_codes[container_id] = int(event["Actor"]["Attributes"]["exitCode"])
        self._ring(container_id)

    def exit_code(self, container_id: str) -> int | None:
        """The exit code of the container's recent `die` event, if one was seen."""
        return self._exit_codes.get(container_id)

    async def _follow_logs(self, container_id: str) -> None:
        # `since` is in whole seconds: start a second early, so that nothing printed between
        # the engine's last read and this stream's start goes unannounced.
        params = {"follow": 1, "stdout": 1, "stderr": 1, "since": int(time.time()) - 1}
        try:
            async with self._client.stream(
                "GET", f"{API}/containers/{container_id}/logs", params=params, timeout=STREAMING
            ) as response:
                if response.status_code != 200:
                    return
                async for _ in response.aiter_raw():
                    self._printed.add(container_id)
                    self._ring(container_id)
        except httpx.HTTPError as exc:
            logger.debug("following the output of %s stopped: %s", container_id, exc)
        finally:
            # The output is no longer followed (the container stopped, or the stream broke):
            # look now, and ask the runtime rather than memory (unless it is forgotten). The
            # end of a container's output comes well before podman's `die` event.
            if self._log_followers.get(container_id) is asyncio.current_task():
                self._printed.add(container_id)
                self._ring(container_id)
