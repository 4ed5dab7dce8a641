"""The local provider's own reader of log streams: HTTP/1.1 chunks and Docker's multiplexed
frames, however the runtime's writes are cut into pieces."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from providers import log_limits
from providers.errors import Unavailable
from providers.local import log_frames, log_stream


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


LONG = b"x" * (log_limits.MAX_LINE_BYTES + 5_000) + b"\n"
FRAMES = [
    frame(1, b"2026-12-05T02:25:43Z one\n"),
    frame(2, b"2026-12-05T02:25:43Z two on stderr\n"),
    frame(1, b"2026-12-05T02:25:43Z " + LONG),
    frame(1, b""),
    frame(1, "2026-12-05T02:25:44Z d\u00e9j\u00e0 vu\n".encode()),
]
STREAM = b"".join(FRAMES)


def test_frames_are_the_same_however_the_stream_is_cut() -> None:
    whole = log_frames.FrameReader().feed(STREAM)
    reader = log_frames.FrameReader()
    bytewise = [f for i in range(len(STREAM)) for f in reader.feed(STREAM[i : i + 1])]

    assert bytewise == whole
    assert [(stream, text[21:]) for stream, text, _ in whole[:2]] == [
        ("stdout", "one\n"),
        ("stderr", "two on stderr\n"),
    ]
    # A frame longer than a line's worth keeps its head and its newline, and counts the rest.
    _, text, dropped = whole[2]
    assert text.endswith("\n") and len(text.encode()) <= log_limits.MAX_LINE_BYTES + 65
    assert dropped == len(b"2026-12-05T02:25:43Z " + LONG) - len(text.encode()) + 1
    assert whole[3] == ("stdout", "", 0)
    assert whole[4][1].endswith("d\u00e9j\u00e0 vu\n")


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = b"", 0
    for size in sizes:
        piece = body[at : at + size]
        at += len(piece)
        if piece:
            out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    if at < len(body):
        out += f"{len(body) - at:X};ext=1\r\n".encode() + body[at:] + b"\r\n"
    return out + b"0\r\n\r\n"


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A fake Docker socket answering each GET with the next queued response, written one
    byte at a time (the worst cut the reader can get)."""
    responses: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for byte in responses.pop(0):
            writer.write(bytes([byte]))
            if byte == 0x0A:
                await writer.drain()
        await writer.drain()
        writer.close()

    path = tmp_path / "docker.sock"
    server = await asyncio.start_unix_server(answer, path=str(path))
    async with server:
        yield f"unix://{path}", responses


async def test_a_chunked_log_arrives_whole(runtime: tuple[str, list[bytes]]) -> None:
    host, responses = runtime
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    responses.append(head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(STREAM, [3, 40, 1]))

    async with log_stream.get(host, "/v1.41/containers/c/logs", {"follow": 1}) as response:
        assert response.status_code == 200
        body = await response.aread()

    assert body == STREAM


async def test_an_error_answer_is_read_with_its_length(runtime: tuple[str, list[bytes]]) -> None:
    host, responses = runtime
    message = b'{"message": "no such container"}'
    responses.append(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(message) + message
    )

    async with log_stream.get(host, "/v1.41/containers/c/logs", {}) as response:
        assert response.status_code == 404
        assert await response.aread() == message


async def test_a_stream_cut_mid_chunk_is_unavailable(runtime: tuple[str, list[bytes]]) -> None:
    host, responses = runtime
    responses.append(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort")

    with pytest.raises(Unavailable):
        async with log_stream.get(host, "/v1.41/containers/c/logs", {}) as response:
            await response.aread()


async def test_an_absent_runtime_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable):
        async with log_stream.get(f"unix://{tmp_path}/none.sock", "/v1.41/_ping", {}):
            pass
