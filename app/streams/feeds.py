"""One reader per followed job in each process.

However many clients follow a job's logs (or events) through this process, the rows each
notification announces are read once, by the job's feed, and every follower takes them from
the feed's window of recent rows. A follower that starts further back, or falls behind the
window because its client reads slowly, reads the database on its own until it catches up;
so the window bounds memory and a slow client never holds anyone else back.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.streams.listener import Listener

logger = logging.getLogger(__name__)

BATCH = 500
# Rows a feed keeps for its followers; one that falls further behind reads the database.
WINDOW = 5_000
# Re-read even without a notification this often: a safety net, never the normal path.
RECHECK_SECONDS = 30.0
RETRY_SECONDS = 1.0

Fetch = Callable[[Any, int, int], Awaitable[Sequence[RowMapping]]]
Ended = Callable[[Any], Awaitable[Any | None]]
Render = Callable[[RowMapping], bytes]


@dataclass(frozen=True)
class End:
    """The last item of a followed source: what `Source.ended` returned."""

    value: Any


@dataclass(frozen=True)
class Source:
    """What a feed follows: its name, the notification that announces new rows, how to read
    rows after a seq, how to tell that nothing more will come (returning the stream's final
    value), and how a row is sent (rendered once per process, whoever follows)."""

    key: str
    notification: str
    fetch: Fetch
    ended: Ended
    render: Render


class Feed:
    def __init__(self, db: AsyncEngine, listener: Listener, source: Source, after: int) -> None:
        self._db = db
        self._listener = listener
        self.source = source
        self._seqs: list[int] = []
        self._payloads: list[bytes] = []
        self._floor = after  # the window holds every row after this seq, up to `last`
        self.last = after
        self.final: Any | None = None
        self._news = asyncio.Event()
        self._task = asyncio.create_task(self._read_forever())
        self.followers = 0

    @property
    def news(self) -> asyncio.Event:
        """Set the next time the feed has read something (or seen the end)."""
        return self._news

    def after(self, seq: int) -> tuple[Sequence[int], Sequence[bytes]] | None:
        """The seqs and rendered rows after `seq` from the window; None when the window no
        longer reaches back."""
        if seq < self._floor:
            return None
        start = bisect.bisect_right(self._seqs, seq)
        return self._seqs[start : start + BATCH], self._payloads[start : start + BATCH]

    def stop(self) -> None:
        self._task.cancel()

    def _publish(self) -> None:
        news, self._news = self._news, asyncio.Event()
        news.set()

    def _keep(self, rows: Sequence[RowMapping]) -> None:
        self._seqs.extend(row["seq"] for row in rows)
        self._payloads.extend(self.source.render(row) for row in rows)
        self.last = self._seqs[-1]
        if len(self._seqs) > 2 * WINDOW:
            self._floor = self._seqs[-WINDOW - 1]
            del self._seqs[:-WINDOW], self._payloads[:-WINDOW]

    async def _read_forever(self) -> None:
        with self._listener.subscribe(self.source.notification) as subscription:
            while self.final is None:
                subscription.clear()
                try:
                    async with database.reading(self._db) as connection:
                        # The end is read before the rows: a job's last rows commit with its end.
                        final = await self.source.ended(connection)
                        rows = await self.source.fetch(connection, self.last, BATCH)
                except Exception:
                    logger.exception("reading %s failed; retrying", self.source.key)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                if rows:
                    self._keep(rows)
                elif final is not None:
                    self.final = final
                self._publish()
                # Once the source has ended, read on until a read finds nothing more.
                if len(rows) < BATCH and final is None:
                    await subscription.wait(RECHECK_SECONDS)


class Feeds:
    """The feeds of one process, each alive while someone follows it."""

    def __init__(self, db: AsyncEngine, listener: Listener) -> None:
        self._db = db
        self._listener = listener
        self._feeds: dict[str, Feed] = {}

    @contextlib.contextmanager
    def _joined(self, source: Source, after: int) -> Iterator[Feed]:
        feed = self._feeds.get(source.key)
        if feed is None:
            feed = self._feeds[source.key] = Feed(self._db, self._listener, source, after)
        feed.followers += 1
        try:
            yield feed
        finally:
            feed.followers -= 1
            if feed.followers == 0 and self._feeds.get(source.key) is feed:
                del self._feeds[source.key]
                feed.stop()

    async def follow(self, source: Source, after: int) -> AsyncIterator[bytes | End]:
        """The rendered rows after `after` (several joined when they are ready together), then
        End once the source has ended and every row was sent."""
        with self._joined(source, after) as feed:
            while True:
                news = feed.news
                found = feed.after(after)
                if found is None:
                    async with database.reading(self._db) as connection:
                        rows = await source.fetch(connection, after, BATCH)
                    found = [row["seq"] for row in rows], [source.render(row) for row in rows]
                seqs, payloads = found
                if seqs:
                    after = seqs[-1]
                    yield b"".join(payloads)
                    continue
                if feed.final is not None and after >= feed.last:
                    yield End(feed.final)
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK_SECONDS):
                        await news.wait()

    @property
    def open(self) -> int:
        return len(self._feeds)

    def stop(self) -> None:
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.stop()
