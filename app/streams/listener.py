"""One LISTEN connection per process, fanning Postgres notifications out to open streams.

A notification only says "job X (or account Y) has new rows"; streams then read the rows
themselves, from their own cursor. So a notification lost while the connection was down
costs nothing: on every (re)connect all streams are woken to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator

import asyncpg
from sqlalchemy.engine import make_url

from app.notify import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

RECONNECT_DELAY, RECONNECT_DELAY_MAX = 0.5, 10.0
# How often the connection proves it is alive; a dead one is noticed within this time.
HEALTH_CHECK_SECONDS = 10.0


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Subscription:
    """Set whenever the key it follows may have new rows."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def clear(self) -> None:
        self._event.clear()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Until set, or `seconds` pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._event.wait()


class Listener:
    def __init__(self, url: str) -> None:
        self._dsn = asyncpg_dsn(url)
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._callbacks: dict[str, list[Callable[[], None]]] = defaultdict(list)
        self.connected = asyncio.Event()

    def on(self, payload: str, callback: Callable[[], None]) -> None:
        """Call `callback` for every notification `payload`, and on every (re)connect (what
        was sent while the connection was down is unknown)."""
        self._callbacks[payload].append(callback)

    @contextlib.contextmanager
    def subscribe(self, key: str) -> Iterator[Subscription]:
        """Follow `job:<id>` or `account:<id>` for the duration of the block."""
        subscription = Subscription()
        self._subscriptions[key].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscriptions.get(key)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscriptions[key]

    @property
    def subscriptions(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscriptions.values())

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_notification(self, connection: object, pid: int, channel: str, payload: str) -> None:
        for subscription in self._subscriptions.get(payload, ()):
            subscription.set()
        for callback in self._callbacks.get(payload, ()):
            callback()

    def _wake_all(self) -> None:
        for subscribers in self._subscriptions.values():
            for subscription in subscribers:
                subscription.set()
        for callbacks in self._callbacks.values():
            for callback in callbacks:
                callback()

    async def _run(self) -> None:
        delay = RECONNECT_DELAY
        while True:
            try:
                connection = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("LISTEN connection failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_DELAY_MAX)
                continue
            delay = RECONNECT_DELAY
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _, lost=lost: lost.set())
            try:
                await connection.add_listener(NOTIFY_CHANNEL, self._on_notification)
                self.connected.set()
                # Whatever was published while we were away: streams re-read from their cursor.
                self._wake_all()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(HEALTH_CHECK_SECONDS):
                            await lost.wait()
                    if not lost.is_set():
                        await connection.execute("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                await _close(connection)


async def _close(connection: asyncpg.Connection) -> None:
    """Close politely if the server answers quickly; otherwise (or when cancelled) drop the
    socket, so that no connection is left behind."""
    try:
        await connection.close(timeout=2)
    except asyncio.CancelledError:
        connection.terminate()
        raise
    except Exception:
        connection.terminate()
