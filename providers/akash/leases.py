"""A lease's log, followed over the provider's websocket
(`wss://{host}/lease/{dseq}/{gseq}/{oseq}/logs?follow=true`, Bearer token minted by Console).

One follower per running deployment keeps every line it received, in order, numbered from
the start of the log; `logs(cursor)` hands out the lines after the cursor. A reconnect (or a
new gateway process) reads the log from its start again and skips what it already holds, so
each line is kept once. Provider certificates are self-signed, so TLS is not verified
(Console's own provider proxy does the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from httpx_ws import AsyncWebSocketSession, HTTPXWSException, aconnect_ws

from providers.types import LogLine

logger = logging.getLogger(__name__)

RECONNECT_DELAY, RECONNECT_DELAY_MAX = 0.5, 30.0
QUICK_RENEWAL_SECONDS = 10.0
MAX_MESSAGE_BYTES = 1 << 20

TokenSource = Callable[[str, bool], Awaitable[str]]  # (provider, renew) -> JWT
HostSource = Callable[[str], Awaitable[str]]  # provider address -> https://host:port


class LeaseLog:
    def __init__(
        self,
        client: httpx.AsyncClient,
        lease: dict[str, Any],
        *,
        token: TokenSource,
        host: HostSource,
        exit_marker: str | None,
    ) -> None:
        self._client = client
        self._lease = lease
        self._token = token
        self._host = host
        self._exit_marker = exit_marker
        # Lines from number `first` on (those before were taken and stored by the engine).
        self.lines: list[LogLine] = []
        self.first = 0
        self.exit_code: int | None = None
        self.changed = asyncio.Event()
        self._frames_seen = 0
        self._socket: Any = None
        self._task = asyncio.create_task(self._follow())

    def read(self, start: int, limit: int) -> list[LogLine]:
        """Lines numbered `start` on. The engine stores lines with their cursor, so it never
        asks again for lines before the cursor it passes: those are dropped."""
        taken = min(start - self.first, len(self.lines))
        if taken > 0:
            del self.lines[:taken]
            self.first += taken
        offset = start - self.first
        return self.lines[offset : offset + limit]

    async def aclose(self) -> None:
        # Close the websocket before cancelling its reader: a session cancelled mid-read
        # leaves its upgraded connection, which no pool owns any more, open.
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await socket.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _follow(self) -> None:
        delay = RECONNECT_DELAY
        renew = False
        renewed_at = -QUICK_RENEWAL_SECONDS
        while True:
            try:
                renew = await self._read_once(renew)
                delay = RECONNECT_DELAY
                if renew and time.monotonic() - renewed_at > QUICK_RENEWAL_SECONDS:
                    # The token expired: a new one, and read on at once (but not in a loop
                    # when fresh tokens are refused straight away).
                    renewed_at = time.monotonic()
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the provider, Console or the network: try again later
                logger.info("akash lease %s log stream broke: %r", self._lease["dseq"], exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_DELAY_MAX)

    async def _read_once(self, renew: bool) -> bool:
        """Read the log from its start until the stream ends; True when the token expired."""
        provider = self._lease["provider"]
        token = await self._token(provider, renew)
        host = await self._host(provider)
        lease = self._lease
        url = f"{host.rstrip('/')}/lease/{lease['dseq']}/{lease['gseq']}/{lease['oseq']}/logs"
        frame = 0
        socket: AsyncWebSocketSession
        try:
            async with aconnect_ws(
                url,
                self._client,
                params={"follow": "true"},
                headers={"Authorization": f"Bearer {token}"},
                max_message_size_bytes=MAX_MESSAGE_BYTES,
            ) as socket:
                self._socket = socket
                while True:
                    message = json.loads(await socket.receive_text())
                    if "error" in message:
                        logger.info("akash lease log: %s", message["error"])
                        return bool(message["error"] == "tokenExpired")
                    frame += 1
                    if frame <= self._frames_seen:
                        continue
                    self._frames_seen = frame
                    self._take(str(message.get("message", "")))
        except HTTPXWSException as exc:
            logger.info("akash lease %s log stream ended: %r", lease["dseq"], exc)
        return False

    def _take(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            if self._exit_marker and line.startswith(self._exit_marker + " "):
                code = line.removeprefix(self._exit_marker + " ").strip()
                if code.lstrip("-").isdigit():
                    self.exit_code = int(code)
                    self.changed.set()
                    continue
            self.lines.append(LogLine(datetime.now(UTC), line))
        self.changed.set()
