"""A container's log as one streaming GET on the Docker Engine API, spoken without httpx.

podman sends every log frame (one line, ~60 bytes) as its own HTTP chunk; through httpx each
chunk is an h11 event, and those events cost the gateway more CPU than the lines' storage.
Here the response is read in large pieces and de-chunked in one loop: plain HTTP/1.1 over the
unix socket (or TCP) of DOCKER_HOST, one connection per stream, closed at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from providers.errors import Unavailable

READ_SIZE = 256 * 1024
CONNECT_TIMEOUT = 5.0
# A status line, header or chunk-size line longer than this is not the Docker API talking.
MAX_LINE = 64 * 1024


class LogStream:
    """The response: its status, its headers, and its body in pieces as they arrive."""

    def __init__(
        self, reader: asyncio.StreamReader, status_code: int, headers: dict[str, str]
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self._reader = reader

    async def aread(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            async for piece in _dechunked(self._reader):
                yield piece
            return
        length = self.headers.get("content-length")
        left = int(length) if length is not None else None
        while left is None or left > 0:
            piece = await self._reader.read(READ_SIZE if left is None else min(READ_SIZE, left))
            if not piece:
                if left:
                    raise Unavailable("the container runtime ended a log response early")
                return
            if left is not None:
                left -= len(piece)
            yield piece


@contextlib.asynccontextmanager
async def get(docker_host: str, path: str, params: dict[str, object]) -> AsyncIterator[LogStream]:
    """GET `path` (with the API version) on `docker_host` (`unix:///path`, `tcp://host:port`);
    connection and protocol failures raise Unavailable."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            if docker_host.startswith("tcp://"):
                host, _, port = docker_host.removeprefix("tcp://").rpartition(":")
                reader, writer = await asyncio.open_connection(host, int(port), limit=MAX_LINE)
            else:
                socket = docker_host.removeprefix("unix://")
                reader, writer = await asyncio.open_unix_connection(socket, limit=MAX_LINE)
    except (OSError, TimeoutError, ValueError) as exc:
        raise Unavailable(f"cannot reach the container runtime: {exc!r}") from exc
    try:
        request = f"GET {path}?{urlencode(params)} HTTP/1.1\r\nHost: docker\r\n\r\n"
        writer.write(request.encode())
        status_line = await reader.readuntil(b"\r\n")
        headers: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            status = int(status_line.split()[1])
        except (IndexError, ValueError):
            raise Unavailable(f"the container runtime answered {status_line[:80]!r}") from None
        yield LogStream(reader, status, headers)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise Unavailable(f"reading from the container runtime failed: {exc!r}") from exc
    finally:
        writer.close()


async def _dechunked(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The payload of a chunked body, one piece per read from the socket (however many
    chunks it held)."""
    buffer = bytearray()
    remaining = 0  # bytes of the current chunk's data still to come
    crlf = False  # the CRLF after a chunk's data is still to come
    while True:
        data = await reader.read(READ_SIZE)
        if not data:
            raise Unavailable("the container runtime ended a log stream mid-chunk")
        buffer += data
        pieces: list[bytes] = []
        at, size, done = 0, len(buffer), False
        while True:
            if remaining:
                take = min(remaining, size - at)
                if take == 0:
                    break
                pieces.append(bytes(buffer[at : at + take]))
                at += take
                remaining -= take
                if remaining:
                    break
                crlf = True
            if crlf:
                if size - at < 2:
                    break
                at += 2
                crlf = False
            end = buffer.find(b"\r\n", at)
            if end < 0:
                if size - at > MAX_LINE:
                    raise Unavailable("the container runtime sent a malformed chunk")
                break
            try:
                chunk = int(buffer[at:end].split(b";")[0], 16)
            except ValueError:
                raise Unavailable("the container runtime sent a malformed chunk") from None
            at = end + 2
            if chunk == 0:
                done = True
                break
            remaining = chunk
        del buffer[:at]
        if pieces:
            yield b"".join(pieces)
        if done:
            return
