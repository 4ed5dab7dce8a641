"""Docker's multiplexed log stream, read incrementally, and joining its frames back into whole
lines, within the limits of providers/log_limits.py."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from providers import log_limits
from providers.types import LogLine

_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}
# A frame's payload is kept up to this much (its timestamp and a line's worth of text).
_MAX_KEPT_PAYLOAD = log_limits.MAX_LINE_BYTES + 64
# A line still being written in more parts than this counts as overlong, like a long one: a
# read capped by size always gets it whole or cut.
MAX_LINE_PARTS = 1_000


@dataclass(frozen=True)
class Frame:
    stream: str
    stamp: str
    moment: datetime
    text: str
    # Bytes of the frame's payload dropped as it was read (it alone passed the line limit).
    dropped: int = 0


@dataclass(frozen=True)
class Joined:
    lines: tuple[LogLine, ...]
    used: int  # frames used, always a prefix
    # Streams left in the middle of a line that was cut: their frames up to the next newline
    # belong to it and are dropped.
    skipping: frozenset[str]


def whole_lines(
    frames: list[Frame],
    partial_lines_are_final: bool,
    limit: int,
    skipping: frozenset[str] = frozenset(),
    *,
    flush: bool = False,
) -> Joined:
    """Join the frames into lines, and say how many frames they used.

    podman stores a long or slowly written line in parts, one frame each (the last part ends
    with a newline), and the parts of stdout and stderr interleave. The frames used are always
    a prefix, so that the cursor can count them: a line is taken only with all its parts and
    with every line that started before it, except a line that passed the limits (or any
    unfinished one, with `flush`): it is taken cut and marked, and the rest of it is skipped.
    """
    open_part: dict[str, int] = {}
    parts: list[list[int]] = []  # each line's frame indexes, in the order lines started
    line_of: list[int] = []
    skip_lines: set[int] = set()  # the tails of lines cut before these frames
    for index, frame in enumerate(frames):
        line = open_part.get(frame.stream)
        if line is None:
            line = len(parts)
            parts.append([])
            if frame.stream in skipping and not any(
                frames[parts[other][0]].stream == frame.stream for other in skip_lines
            ):
                skip_lines.add(line)
        parts[line].append(index)
        line_of.append(line)
        if frame.text.endswith("\n"):
            open_part.pop(frame.stream, None)
        else:
            open_part[frame.stream] = line
    unfinished = set(open_part.values())
    sizes = [sum(len(frames[i].text) + frames[i].dropped for i in indexes) for indexes in parts]
    cut = {
        line
        for line in unfinished - skip_lines
        if flush or sizes[line] > log_limits.MAX_LINE_BYTES or len(parts[line]) > MAX_LINE_PARTS
    }
    waiting = set() if partial_lines_are_final else unfinished - skip_lines - cut

    used, taken_lines, reach = 0, 0, -1
    for index in range(len(frames)):
        line = line_of[index]
        if parts[line][0] == index and line not in skip_lines:
            if line in waiting or taken_lines == limit:
                break
            taken_lines += 1
        reach = max(reach, parts[line][-1])
        if reach == index:
            used = index + 1
    lines = []
    for line, indexes in enumerate(parts):
        if line in skip_lines or indexes[-1] >= used:
            continue
        text = "".join(frames[i].text for i in indexes).removesuffix("\n")
        dropped = sum(frames[i].dropped for i in indexes)
        continues = line in cut and not partial_lines_are_final
        lines.append(
            LogLine(
                frames[indexes[0]].moment,
                log_limits.clip(text, dropped_bytes=dropped, continues=continues),
                frames[indexes[0]].stream,
            )
        )
    still = set()
    for stream in {frame.stream for frame in frames[:used]} | skipping:
        last = next((i for i in range(used - 1, -1, -1) if frames[i].stream == stream), None)
        if last is None:
            if stream in skipping:
                still.add(stream)
        elif not frames[last].text.endswith("\n") and (
            line_of[last] in skip_lines or line_of[last] in cut
        ):
            still.add(stream)
    return Joined(tuple(lines), used, frozenset(still))


class FrameReader:
    """Docker's multiplexed log stream (8-byte headers: stream, 0, 0, 0, big-endian size),
    fed in pieces as they arrive, as (stream, text, bytes dropped) per frame. A frame's
    payload is kept up to a line's worth (and its final newline), so memory stays bounded
    whatever the runtime sends."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._header: tuple[int, int] | None = None
        self._kept = bytearray()
        self._remaining = 0

    def feed(self, chunk: bytes) -> list[tuple[str, str, int]]:
        frames: list[tuple[str, str, int]] = []
        buffer = self._buffer
        buffer += chunk
        at, size = 0, len(buffer)
        while True:
            if self._header is None:
                if size - at < 8:
                    break
                stream, length = _HEADER.unpack_from(buffer, at)
                at += 8
                if not self._kept and size - at >= length and length <= _MAX_KEPT_PAYLOAD:
                    # The common case: the whole frame is here and within the limit.
                    text = buffer[at : at + length].decode(errors="replace")
                    at += length
                    frames.append((_STREAMS.get(stream, "stdout"), text, 0))
                    continue
                self._header = (stream, length)
                self._remaining = length
                self._kept.clear()
            take = min(self._remaining, size - at)
            room = max(_MAX_KEPT_PAYLOAD - len(self._kept), 0)
            self._kept += buffer[at : at + min(take, room)]
            last = buffer[at + take - 1 : at + take]
            at += take
            self._remaining -= take
            if self._remaining:
                break
            length = self._header[1]
            text = self._kept.decode(errors="replace")
            dropped = length - len(self._kept)
            if dropped and last == b"\n" and not text.endswith("\n"):
                text += "\n"
            frames.append((_STREAMS.get(self._header[0], "stdout"), text, max(dropped, 0)))
            self._header = None
            self._kept.clear()
        del buffer[:at]
        return frames


_HEADER = struct.Struct(">BxxxI")


def parse_cursor(cursor: str | None) -> tuple[str | None, int, frozenset[str]]:
    """ "<last timestamp>|<frames taken with it>[|<streams in the middle of a cut line>]"."""
    if not cursor:
        return None, 0, frozenset()
    stamp, taken, *rest = cursor.split("|")
    skipping = frozenset(s for s in rest[0].split(",") if s) if rest else frozenset()
    return stamp, int(taken), skipping


def format_cursor(stamp: str | None, taken: int, skipping: frozenset[str]) -> str | None:
    """The cursor parse_cursor reads back; None before the first frame."""
    if not stamp:
        return None
    return f"{stamp}|{taken}" + (f"|{','.join(sorted(skipping))}" if skipping else "")
