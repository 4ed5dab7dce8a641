"""Sends webhook deliveries: every gateway process runs one.

It claims due deliveries (SKIP LOCKED, so two processes never take the same attempt), endpoints
taking turns and each with at most CORTEX_WEBHOOK_ENDPOINT_CONCURRENCY sends in flight here, so
a slow receiver or a backlog holds only its own share; sends each in its own task, within a
total deadline (CORTEX_WEBHOOK_TIMEOUT, reading the answer included); records every attempt,
and schedules retries with jittered backoff. An endpoint that keeps failing past a limit is
disabled, with the reason on it.

Attempts are recorded in batches, one transaction for all that ended since the last: under
load that is most of the bookkeeping saved. A delivery stays claimed until its attempt is
recorded, so a crash in between only means it is sent again (at least once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import __version__, database
from app.observability import metrics as observability_metrics
from app.settings import Settings
from app.streams.listener import Listener
from app.webhooks import repository, signing, url_guard

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 64 * 1024
STORED_RESPONSE_CHARS = 2_000
JITTER = 0.1
POLL_SECONDS = 1.0
MAX_RECORDED_AT_ONCE = 500


class Dispatcher:
    def __init__(self, db: AsyncEngine, settings: Settings, listener: Listener) -> None:
        self.db = db
        self.listener = listener
        self.delays = settings.webhook_retry_delays
        self.disable_after = settings.webhook_disable_after
        self.timeout = settings.webhook_timeout
        self.capacity = settings.webhook_concurrency
        self.per_endpoint = settings.webhook_endpoint_concurrency
        self.allowed = url_guard.parse_networks(settings.webhook_allowed_networks)
        self.lease_seconds = settings.webhook_timeout + 30
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.webhook_timeout),
            headers={"User-Agent": f"cortex-gateway-webhooks/{__version__}"},
            limits=httpx.Limits(max_connections=settings.webhook_concurrency * 2),
        )
        self._in_flight: set[asyncio.Task[None]] = set()
        self._per_endpoint: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._ended: list[_Ended] = []
        self._to_record = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        self._recorder = asyncio.create_task(self._record_forever())

    async def stop(self) -> None:
        tasks = [t for t in [self._task, self._recorder, *self._in_flight] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # What was sent but not yet written down: record it now, or it would be sent again.
        while self._ended:
            await self._record_batch()
        await self._client.aclose()

    async def _run(self) -> None:
        delay = 1.0
        with self.listener.subscribe(repository.NOTIFY_PAYLOAD) as news:
            while True:
                try:
                    news.clear()
                    # Cleared before claiming: a send ending meanwhile frees its endpoint's
                    # turn, and must wake the wait below.
                    self._room.clear()
                    claimed = await self._claim()
                    delay = 1.0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception(
                        "claiming webhook deliveries failed; retrying in %.0f s", delay
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 60)
                    continue
                if claimed:
                    continue
                if len(self._in_flight) >= self.capacity:
                    await self._room.wait()
                    continue
                await _either(news.wait(POLL_SECONDS), self._room.wait())

    async def _claim(self) -> int:
        room = self.capacity - len(self._in_flight)
        if room <= 0:
            return 0
        async with database.transaction(self.db) as connection:
            rows = await repository.claim_due(
                connection,
                limit=room,
                lease_seconds=self.lease_seconds,
                per_endpoint=self.per_endpoint,
                in_flight={k: n for k, n in self._per_endpoint.items() if n > 0},
            )
        for row in rows:
            endpoint_id = row["endpoint_id"]
            self._per_endpoint[endpoint_id] += 1
            task = asyncio.create_task(self._deliver(row))
            self._in_flight.add(task)
            task.add_done_callback(functools.partial(self._done, endpoint_id))
        return len(rows)

    def _done(self, endpoint_id: str, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._per_endpoint[endpoint_id] -= 1
        if self._per_endpoint[endpoint_id] <= 0:
            del self._per_endpoint[endpoint_id]
        self._room.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook delivery task failed", exc_info=task.exception())

    async def _deliver(self, row: RowMapping) -> None:
        outcome = await self._send(row)
        ended = self._judge(row, *outcome)
        self._ended.append(ended)
        self._to_record.set()
        await ended.recorded

    async def _send(self, row: RowMapping) -> _Outcome:
        attempted_at = datetime.now(UTC)
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        body: str | None = None
        try:
            # httpx's timeout bounds each read; this bounds the attempt, so a receiver that
            # drips its answer a byte at a time holds a slot for CORTEX_WEBHOOK_TIMEOUT at most.
            async with asyncio.timeout(self.timeout):
                status_code, body = await self._post(row, attempted_at)
            if not 200 <= status_code < 300:
                error = f"the endpoint answered {status_code}"
        except url_guard.UnsafeURL as exc:
            error = f"refused: {exc}"
        except _Refused as exc:
            error = str(exc)
        except (httpx.TimeoutException, TimeoutError):
            error = f"timed out after {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = int((time.monotonic() - started) * 1000)
        return attempted_at, status_code, error, duration_ms, body

    async def _post(self, row: RowMapping, attempted_at: datetime) -> tuple[int, str]:
        """Send the delivery; returns the status and the start of the answer."""
        if not row["active"]:
            raise _Refused("the endpoint is disabled")
        target = await url_guard.resolve(row["url"], self.allowed)
        secrets = [row["secret"]]
        if (
            row["previous_secret"]
            and (row["previous_secret_expires_at"] or attempted_at) > attempted_at
        ):
            secrets.append(row["previous_secret"])
        headers = signing.headers(secrets, row["id"], int(time.time()), row["payload"])
        headers["host"] = (
            target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
        )
        async with self._client.stream(
            "POST",
            target.pinned_url,
            content=row["payload"].encode(),
            headers=headers,
            extensions={"sni_hostname": target.host},
        ) as response:
            return response.status_code, await _read_some(response)

    def _judge(
        self,
        row: RowMapping,
        attempted_at: datetime,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        body: str | None,
    ) -> _Ended:
        """What an attempt means for its delivery: done, retried later, or failed for good."""
        retry_in = None
        if error is None:
            status = "succeeded"
        elif row["attempts"] <= len(self.delays) and row["active"]:
            status = "pending"
            base = self.delays[row["attempts"] - 1]
            retry_in = base * random.uniform(1 - JITTER, 1 + JITTER)
        else:
            status = "failed"
        observability_metrics.webhook_attempted(status)
        attempt = {
            "delivery_id": row["id"],
            "attempted_at": attempted_at,
            "status_code": status_code,
            "error": error,
            "duration_ms": duration_ms,
            "response_body": body,
        }
        finish = {
            "delivery_id": row["id"],
            "status": status,
            "attempted_at": attempted_at,
            "retry_in": retry_in,
        }
        recorded = asyncio.get_running_loop().create_future()
        return _Ended(row["endpoint_id"], row["active"], error, attempt, finish, recorded)

    async def _record_forever(self) -> None:
        while True:
            await self._to_record.wait()
            self._to_record.clear()
            while self._ended:
                try:
                    await self._record_batch()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The deliveries stay claimed until their lease ends, then go out again.
                    logger.exception("recording webhook attempts failed")
                    await asyncio.sleep(1.0)

    async def _record_batch(self) -> None:
        batch = self._ended[:MAX_RECORDED_AT_ONCE]
        del self._ended[: len(batch)]
        try:
            async with database.transaction(self.db) as connection:
                await repository.record_attempts(connection, [e.attempt for e in batch])
                await repository.finish_deliveries(connection, [e.finish for e in batch])
                await self._note_endpoints(connection, batch)
        finally:
            for ended in batch:
                if not ended.recorded.done():
                    ended.recorded.set_result(None)

    async def _note_endpoints(self, connection: AsyncConnection, batch: list[_Ended]) -> None:
        """An endpoint's latest attempt in the batch says whether it is failing."""
        latest = {ended.endpoint_id: ended for ended in batch}
        succeeded = [e.endpoint_id for e in latest.values() if e.error is None]
        if succeeded:
            await repository.endpoints_succeeded(connection, succeeded)
        for ended in latest.values():
            if ended.error is None or not ended.active:
                continue
            disabled = await repository.endpoint_failed(
                connection,
                ended.endpoint_id,
                disable_after=self.disable_after,
                reason=f"Disabled after failing for {self.disable_after:g} s; "
                f"last error: {ended.error}",
            )
            if disabled:
                logger.warning("webhook endpoint %s disabled: %s", ended.endpoint_id, ended.error)


@dataclass
class _Ended:
    """A finished attempt waiting to be recorded."""

    endpoint_id: str
    active: bool
    error: str | None
    attempt: dict[str, Any]
    finish: dict[str, Any]
    recorded: asyncio.Future[None]


class _Refused(Exception):
    pass


async def _either(*waits: Any) -> None:
    """Until the first of `waits` (coroutines) ends."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# When the attempt started, HTTP status, error, duration in ms, start of the answer.
_Outcome = tuple[datetime, int | None, str | None, int, str | None]


async def _read_some(response: httpx.Response) -> str:
    """At most MAX_RESPONSE_BYTES of the answer: a receiver cannot make us read a flood."""
    received = bytearray()
    async for chunk in response.aiter_raw():
        received += chunk
        if len(received) >= MAX_RESPONSE_BYTES:
            break
    return received[:STORED_RESPONSE_CHARS].decode(errors="replace")
