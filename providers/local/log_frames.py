"""Docker's multiplexed log stream, and joining its frames back into whole lines."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from providers.types import LogLine

_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}


@dataclass(frozen=True)
class Frame:
    stream: str
    stamp: str
    moment: datetime
    text: str


def whole_lines(
    frames: list[Frame], partial_lines_are_final: bool, limit: int
) -> tuple[tuple[LogLine, ...], int]:
    """Join the frames into lines, and say how many frames they used.

    podman stores a long or slowly written line in parts, one frame each (the last part ends
    with a newline), and the parts of stdout and stderr interleave. The frames used are always
    a prefix, so that the cursor can count them: a line is taken only with all its parts and
    with every line that started before it.
    """
    open_part: dict[str, int] = {}
    parts: list[list[int]] = []  # each line's frame indexes, in the order lines started
    line_of: list[int] = []
    for index, frame in enumerate(frames):
        line = open_part.get(frame.stream)
        if line is None:
            line = len(parts)
            parts.append([])
        parts[line].append(index)
        line_of.append(line)
        if frame.text.endswith("\n"):
            open_part.pop(frame.stream, None)
        else:
            open_part[frame.stream] = line
    unfinished = set() if partial_lines_are_final else set(open_part.values())

    used, taken_lines, reach = 0, 0, -1
    for index in range(len(frames)):
        line = line_of[index]
        if parts[line][0] == index:
            if line in unfinished or taken_lines == limit:
                break
            taken_lines += 1
        reach = max(reach, parts[line][-1])
        if reach == index:
            used = index + 1
    lines = tuple(
        LogLine(
            frames[indexes[0]].moment,
            "".join(frames[i].text for i in indexes).removesuffix("\n"),
            frames[indexes[0]].stream,
        )
        for indexes in parts
        if indexes[-1] < used
    )
    return lines, used


def frames(raw: bytes) -> list[tuple[str, str]]:
    """Docker's multiplexed log stream: 8-byte headers (stream, 0, 0, 0, big-endian size)."""
    frames = []
    offset = 0
    while offset + 8 <= len(raw):
        stream_type, size = struct.unpack(">BxxxI", raw[offset : offset + 8])
        payload = raw[offset + 8 : offset + 8 + size]
        offset += 8 + size
        frames.append((_STREAMS.get(stream_type, "stdout"), payload.decode(errors="replace")))
    return frames
