"""Server-Sent Event streams over rows in Postgres.

Each stream reads rows after its cursor, sends them with `id:` set to the cursor, and sleeps
until the listener says its key has news (or a safety interval passes). The database is the
buffer: a slow client holds back only its own stream, and the engine never waits for one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.requests import Request
from starlette.types import Message, Send

from app import database
from app.auth import cache as key_cache
from app.auth import service as auth_service
from app.envelope import utc_iso
from app.exception_handlers import is_database_outage
from app.jobs.lifecycle import TERMINAL, JobStatus
from app.settings import Settings
from app.streams import repository
from app.streams.feeds import End, Feeds, Source
from app.streams.listener import Listener

BATCH = 500
# How often an open stream checks that its API key is still valid: the key cache's window,
# so a revoked key's streams end as soon as its requests are refused.
KEY_CHECK_SECONDS = key_cache.TTL_SECONDS
# Re-read even without a notification this often: a safety net, never the normal path.
RECHECK_SECONDS = 30.0
LATE_READS, LATE_READ_SECONDS = 5, 0.1
Cursor = TypeVar("Cursor")


class EventStream(EventSourceResponse):
    """sse-starlette's response, with each send bounded by asyncio's own timeout.

    sse-starlette bounds a send with an anyio cancel scope; with 2,000 followers that scope
    was a fifth of the process's CPU (bench/ENGINE_STREAMS_WEBHOOKS.md). `asyncio.timeout`
    bounds it the same way at a fraction of the cost, and a stalled client is still cut off
    after `stream_send_timeout` (tests/streams/test_sse.py)."""

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        try:
            async with asyncio.timeout(self.send_timeout):
                await send(message)
        except TimeoutError:
            raise SendTimeoutError() from None


def response(
    content: AsyncIterator[ServerSentEvent], request: Request, key_id: str
) -> EventSourceResponse:
    """The stream, for as long as the API key behind it (or behind its stream token) stays
    valid: it is looked at again every key-cache window after a key changed (or while key
    notifications cannot be heard), and a revoked key's stream ends with a
    `revoked` event."""
    settings: Settings = request.state.settings
    guarded = _while_key_active(
        content, request.state.db, key_id, KEY_CHECK_SECONDS, request.state.key_cache
    )
    return EventStream(
        guarded, ping=settings.stream_heartbeat, send_timeout=settings.stream_send_timeout
    )


async def _while_key_active(
    content: AsyncIterator[ServerSentEvent],
    db: AsyncEngine,
    key_id: str,
    every: float,
    keys: key_cache.KeyCache,
) -> AsyncIterator[ServerSentEvent]:
    """The key is read again only when a key may have changed since the last look (a `keys`
    notification, or the listener not hearing them): thousands of quiet streams cost the
    database nothing."""
    pending: asyncio.Future[ServerSentEvent] | None = None
    checked = time.monotonic()
    seen = keys.generation
    try:
        while True:
            if time.monotonic() - checked >= every and keys.vouches_since(seen):
                checked = time.monotonic()
            elif time.monotonic() - checked >= every:
                seen = keys.generation
                try:
                    async with database.reading(db) as connection:
                        active = await auth_service.key_is_active(connection, key_id)
                except Exception as exc:
                    if not is_database_outage(exc):
                        raise
                    # The stream's own feed rides out the outage; the key is checked again
                    # once the database answers.
                    active = True
                checked = time.monotonic()
                if not active:
                    yield ServerSentEvent(
                        data=json.dumps({"reason": "key_revoked"}), event="revoked"
                    )
                    return
            if pending is None:
                pending = asyncio.ensure_future(anext(content))
            done, _ = await asyncio.wait({pending}, timeout=every - (time.monotonic() - checked))
            if not done:
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        aclose = getattr(content, "aclose", None)
        if aclose is not None:
            await aclose()


async def _follow(
    db: AsyncEngine,
    listener: Listener,
    key: str,
    after: Cursor,
    fetch: Callable[[Any, Cursor], Awaitable[Sequence[RowMapping]]],
    render: Callable[[RowMapping], tuple[ServerSentEvent, Cursor]],
    ended: Callable[[Any], Awaitable[ServerSentEvent | None]] | None = None,
) -> AsyncIterator[ServerSentEvent]:
    with listener.subscribe(key) as news:
        late_reads = 0
        while True:
            news.clear()
            async with database.reading(db) as connection:
                # The end is read before the rows: a job's last rows commit with its end.
                final = await ended(connection) if ended is not None else None
                rows = await fetch(connection, after)
            for row in rows:
                event, after = render(row)
                yield event
            if len(rows) == BATCH:
                continue
            if final is not None and not rows:
                yield final
                return
            if rows:
                late_reads = 0
            elif late_reads < LATE_READS:
                # Notified but nothing readable yet (an account's event becomes readable once
                # older transactions settle): look again shortly.
                late_reads += 1
                await news.wait(LATE_READ_SECONDS)
            else:
                await news.wait(RECHECK_SECONDS)


def _end_of(job_id: str) -> Callable[[Any], Awaitable[ServerSentEvent | None]]:
    async def ended(connection: Any) -> ServerSentEvent | None:
        status = await repository.job_status(connection, job_id)
        if status is None or JobStatus(status) in TERMINAL:
            return ServerSentEvent(data=json.dumps({"status": status}), event="end")
        return None

    return ended


async def _job_rows(feeds: Feeds, source: Source, after_seq: int) -> AsyncIterator[Any]:
    """A job's rows (log lines or events) by sequence number, until the job has ended."""
    async for item in feeds.follow(source, after_seq):
        if isinstance(item, End):
            yield item.value
            return
        yield item


def _renderer(fields: tuple[str, ...]) -> Callable[[RowMapping], bytes]:
    def render(row: RowMapping) -> bytes:
        data = {name: utc_iso(row[name]) if name == "timestamp" else row[name] for name in fields}
        return ServerSentEvent(data=json.dumps(data), id=str(row["seq"])).encode()

    return render


_LOG_LINE = _renderer(("timestamp", "line", "stream"))
_JOB_EVENT = _renderer(("type", "timestamp", "message", "data"))


def job_logs(feeds: Feeds, job_id: str, after_seq: int) -> AsyncIterator[Any]:
    source = Source(
        f"logs:{job_id}",
        f"job:{job_id}",
        lambda connection, after, limit: repository.logs_after(connection, job_id, after, limit),
        _end_of(job_id),
        _LOG_LINE,
    )
    return _job_rows(feeds, source, after_seq)


def job_events(feeds: Feeds, job_id: str, after_seq: int) -> AsyncIterator[Any]:
    source = Source(
        f"events:{job_id}",
        f"job:{job_id}",
        lambda connection, after, limit: repository.events_after(connection, job_id, after, limit),
        _end_of(job_id),
        _JOB_EVENT,
    )
    return _job_rows(feeds, source, after_seq)


def account_event_data(row: RowMapping) -> dict[str, Any]:
    return {
        "jobId": row["job_id"],
        "type": row["type"],
        "status": row["status"],
        "provider": row["provider"],
        "timestamp": utc_iso(row["timestamp"]),
        "message": row["message"],
    }


def account_event_id(row: RowMapping) -> str:
    return f"{row['txid']}.{row['id']}"


def account_events(
    db: AsyncEngine, listener: Listener, account_id: str, after: tuple[int, int]
) -> AsyncIterator[ServerSentEvent]:
    def render(row: RowMapping) -> tuple[ServerSentEvent, tuple[int, int]]:
        event = ServerSentEvent(data=json.dumps(account_event_data(row)), id=account_event_id(row))
        return event, (row["txid"], row["id"])

    return _follow(
        db,
        listener,
        f"account:{account_id}",
        after,
        lambda connection, cursor: repository.account_events_after(
            connection, account_id, cursor, BATCH
        ),
        render,
    )
