"""The job's work on a Golem activity: one ExeScript batch (deploy, start, run) and a follower
that reads its results while it runs.

yagna streams a batch's runtime events over SSE (`Accept: text/event-stream`), but only those
that happen while a client listens; with `capture: stream` and no limit, the exe-unit also
keeps the whole output and returns it in the `run` command's result once it finishes
(yagna exe-unit/src/output.rs). So the follower shows lines live when it has listened since
before the command started, and otherwise (after a gateway restart) takes them from the
finished result: a log cursor counts characters taken from each stream, which name the same
lines either way.

Whatever the job prints, the follower holds per stream only what the engine has not taken
yet (its cursor says what it took), at most MAX_HELD_CHARS of it: past that, output is counted
and dropped, and the lines say so once the engine has taken what was held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from providers import log_limits
from providers.errors import Unavailable
from providers.golem.yagna import ACTIVITY, Yagna, YagnaError, dumps, parse_sse
from providers.types import LogLine

logger = logging.getLogger(__name__)

DEPLOY, START, RUN = 0, 1, 2
STREAMS = ("stdout", "stderr")
# Lines handed over per logs() call, so one noisy job cannot flood a transaction.
MAX_LINES_PER_READ = 5_000
# What the follower keeps of one stream that the engine has not taken yet (characters; the
# stream is text).
MAX_HELD_CHARS = log_limits.MAX_READ_BYTES
# yapapi gives a provider three failed result reads before it checks whether the activity
# is gone (yapapi/rest/activity.py); the follower counts the same.
FAILURES_BEFORE_STATE_CHECK = 3
_EXIT_CODE = re.compile(r"exited with code (-?\d+)")


def exe_script(entry_point: str, args: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    """deploy (env goes here), start, run with both streams captured as streams."""
    capture = {"stdout": {"stream": {"format": "str"}}, "stderr": {"stream": {"format": "str"}}}
    return [
        {"deploy": {"env": env} if env else {}},
        {"start": {"args": []}},
        {"run": {"entry_point": entry_point, "args": args, "capture": capture}},
    ]


def exec_body(commands: list[dict[str, Any]]) -> dict[str, str]:
    """yagna parses the ExeScript from a string: {"text": "<JSON array>"}."""
    return {"text": dumps(commands)}


def _parse_time(text: Any) -> datetime:
    if isinstance(text, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _output_text(value: Any) -> str:
    """`{"stdout": "text"}` or, for the bin format, a list of byte values."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return bytes(int(b) & 0xFF for b in value).decode(errors="replace")
    return ""


@dataclass
class Held:
    """One stream's output the engine has not taken yet: `text` begins at character `start`
    of the stream, and `dropped` characters (`dropped_bytes` bytes) after it were not kept."""

    start: int = 0
    text: str = ""
    dropped: int = 0
    dropped_bytes: int = 0
    # (offset after a piece of output, when it arrived), for the pieces still held.
    marks: list[tuple[int, datetime]] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + len(self.text)

    def add(self, chunk: str, moment: datetime) -> None:
        # Once anything was dropped, later output is dropped too until the engine has taken
        # what comes before it: the held text never has a hole in it.
        room = 0 if self.dropped else max(MAX_HELD_CHARS - len(self.text), 0)
        if kept := chunk[:room]:
            self.text += kept
            self.marks.append((self.end, moment))
        if rest := chunk[len(kept) :]:
            self.dropped += len(rest)
            self.dropped_bytes += len(rest.encode())

    def take_to(self, offset: int) -> None:
        """Forget what comes before `offset` (the engine's cursor: it has stored that)."""
        if offset <= self.start:
            return
        if offset <= self.end:
            self.text = self.text[offset - self.start :]
        else:
            past = min(offset - self.end, self.dropped)
            if self.dropped:
                # Bytes per character as counted; exact for ASCII, close otherwise.
                self.dropped_bytes -= self.dropped_bytes * past // self.dropped
            self.dropped -= past
            self.text = ""
        self.start = offset
        self.marks = [mark for mark in self.marks if mark[0] > offset]

    def replace(self, whole: str, moment: datetime) -> None:
        """Hold the part of the stream's `whole` output past what the engine took."""
        self.text = whole[self.start : self.start + MAX_HELD_CHARS]
        rest = whole[self.start + MAX_HELD_CHARS :]
        self.dropped, self.dropped_bytes = len(rest), len(rest.encode())
        self.marks.append((len(whole), moment))


@dataclass
class Outcome:
    """How the batch ended: the failing command's index, its exit code, the message."""

    index: int
    code: int | None
    message: str | None


@dataclass
class BatchFollower:
    yagna: Yagna
    activity_id: str
    batch_id: str
    poll: float
    # Per stream, what was read (streamed, or the finished run's) and not yet taken.
    held: dict[str, Held] = field(default_factory=lambda: {name: Held() for name in STREAMS})
    # True once the follower is known to have seen the run command from its start.
    from_start: bool | None = None
    run_started_at: datetime | None = None
    outcome: Outcome | None = None
    # Whether the finished run's output (from its result) was read, and when it was recorded.
    final: bool = False
    final_at: datetime | None = None
    # The finished run's whole output, kept only until the engine's cursor is known (a
    # follower made after a restart): then only what is past the cursor is held.
    _final_whole: dict[str, str] | None = None
    _cursor_known: bool = False
    failures: int = 0
    last_error: str | None = None
    stopped: bool = False
    _task: asyncio.Task[None] | None = None
    _news: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def path(self) -> str:
        return f"{ACTIVITY}/activity/{self.activity_id}/exec/{self.batch_id}"

    @property
    def done(self) -> bool:
        return self.outcome is not None and (self.final or self.outcome.index != RUN)

    def start(self) -> None:
        if self.stopped:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name=f"golem-batch-{self.batch_id}")

    async def changed(self, max_wait: float) -> None:
        """Until something new arrived (output, an outcome) or `max_wait` seconds."""
        if self.done:
            return
        self._news.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait):
                await self._news.wait()

    async def stop(self) -> None:
        """Stop reading (the activity is being destroyed); what was read stays readable."""
        self.stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- reading -------------------------------------------------------------------------------

    async def _follow(self) -> None:
        streaming = True
        while not self.done:
            try:
                if streaming:
                    streaming = await self._stream()
                if not self.done:
                    await self._poll_results(self.poll)
                self.failures, self.last_error = 0, None
            except (YagnaError, Unavailable) as exc:
                self.failures += 1
                self.last_error = str(exc)
                logger.info("golem batch %s: reading results failed: %s", self.batch_id, exc)
                await asyncio.sleep(self.poll)

    async def _stream(self) -> bool:
        """Follow the SSE stream until the batch ends or the stream does. Returns whether
        to stream again (False: the daemon does not stream; long-poll instead)."""
        try:
            async with self.yagna.stream(self.path) as response:
                content_type = response.headers.get("content-type", "")
                if not content_type.startswith("text/event-stream"):
                    return False
                # Anything that happened before we listened is in the JSON results.
                await self._poll_results(0.0)
                if self.done:
                    return True
                frame: list[str] = []
                async for line in response.aiter_lines():
                    if line:
                        frame.append(line)
                        continue
                    event, data = parse_sse(frame)
                    frame = []
                    if event == "runtime" and data:
                        with contextlib.suppress(ValueError):
                            self._on_event(json.loads(data))
                        self._news.set()
                    if self.outcome is not None:
                        break
        except YagnaError as exc:
            if exc.status in (404, 406, 415, 501):
                return False
            raise
        if self.outcome is not None and not self.done:
            await self._poll_results(self.poll)
        return True

    def _on_event(self, event: dict[str, Any]) -> None:
        index = int(event.get("index", -1))
        kind = event.get("kind") or {}
        moment = _parse_time(event.get("timestamp"))
        if self.from_start is None:
            self.from_start = index < RUN or (index == RUN and "started" in kind)
        if "started" in kind and index == RUN:
            self.run_started_at = moment
        for name in STREAMS:
            if name in kind and index == RUN and self.from_start:
                self.held[name].add(_output_text(kind[name]), moment)
        finished = kind.get("finished")
        if isinstance(finished, dict):
            code = finished.get("return_code", finished.get("returnCode"))
            code = int(code) if code is not None else None
            if index == RUN or code not in (0, None):
                self.outcome = Outcome(index, code, finished.get("message"))

    async def _poll_results(self, wait: float) -> None:
        """The JSON results (long-poll for up to `wait` s): finished commands, and the run
        command's captured output once it ended."""
        results = await self.yagna.call("GET", self.path, params={"timeout": wait}, wait=wait)
        for result in results or []:
            index = int(result.get("index", -1))
            if index == START and self.run_started_at is None:
                self.run_started_at = _parse_time(result.get("eventDate"))
            failed = result.get("result") == "Error"
            if index == RUN or failed:
                message = result.get("message")
                code = 0 if not failed else _code_from(message)
                if self.outcome is None or self.outcome.code is None:
                    self.outcome = Outcome(index, code, message)
                if index == RUN and not self.final:
                    self.final = True
                    self.final_at = _parse_time(result.get("eventDate"))
                    self._final_whole = {n: _output_text(result.get(n)) for n in STREAMS}
                    if self._cursor_known:
                        self._hold_final()
                self._news.set()

    # -- lines ---------------------------------------------------------------------------------

    def _hold_final(self) -> None:
        whole, self._final_whole = self._final_whole, None
        if whole is not None:
            for name in STREAMS:
                self.held[name].replace(whole[name], self.final_at or datetime.now(UTC))

    def lines_after(self, cursor: str | None) -> tuple[list[LogLine], str | None]:
        """Complete lines after `cursor` (every line, the last unterminated one too, once
        the run ended) and the cursor that follows them. What comes before `cursor` is
        forgotten: the engine stored it."""
        taken, partial = _parse_cursor(cursor)
        for name in STREAMS:
            self.held[name].take_to(taken[name])
        self._cursor_known = True
        self._hold_final()
        if not self.final and not self.from_start:
            return [], cursor
        found: list[tuple[datetime, int, str, int, str | None, bool]] = []
        for order, name in enumerate(STREAMS):
            for end, moment, line, mid in _split(self.held[name], partial[name], self.final):
                found.append((moment, order, name, end, line, mid))
        found.sort(key=lambda item: (item[0], item[1]))
        found = found[:MAX_LINES_PER_READ]
        for _, _, name, end, _, mid in found:
            if end > taken[name]:
                taken[name], partial[name] = end, mid
        lines = [
            LogLine(when, line, name) for when, _, name, _, line, _ in found if line is not None
        ]
        return lines, _format_cursor(taken, partial)


def _code_from(message: Any) -> int | None:
    match = _EXIT_CODE.search(str(message or ""))
    return int(match.group(1)) if match else None


def _split(held: Held, mid_line: bool, ended: bool) -> list[tuple[int, datetime, str | None, bool]]:
    """Lines of `held`: (stream offset after the line, when it was complete, the line or None
    for the rest of a line already cut, whether a cut line goes on after it). `mid_line`: the
    held text begins inside a line that was cut."""
    found: list[tuple[int, datetime, str | None, bool]] = []
    text, base, position = held.text, held.start, 0
    while (newline := text.find("\n", position)) >= 0:
        end = base + newline + 1
        line = text[position:newline].removesuffix("\r")
        found.append(
            (end, _when(held.marks, end), None if mid_line else log_limits.clip(line), False)
        )
        position, mid_line = newline + 1, False
    tail = text[position:]
    # A line longer than any kept line is handed over cut, without waiting for its end.
    if tail and (ended or mid_line or len(tail) > log_limits.MAX_LINE_BYTES):
        cut = None if mid_line else log_limits.clip(tail, continues=not ended)
        found.append((held.end, _when(held.marks, held.end), cut, not ended))
        mid_line = not ended
    if held.dropped and (found[-1][0] if found else held.start) == held.end:
        end = held.end + held.dropped
        note = log_limits.dropped(held.dropped_bytes, MAX_HELD_CHARS)
        found.append((end, _when(held.marks, end), note, False))
    return found


def _when(marks: list[tuple[int, datetime]], offset: int) -> datetime:
    for end, moment in marks:
        if end >= offset:
            return moment
    return marks[-1][1] if marks else datetime.now(UTC)


def _parse_cursor(cursor: str | None) -> tuple[dict[str, int], dict[str, bool]]:
    """Characters taken per stream, and whether the last line taken was cut (a `+` after the
    count): the rest of that line is dropped, as the cut line's marker said."""
    taken, partial = dict.fromkeys(STREAMS, 0), dict.fromkeys(STREAMS, False)
    for part in (cursor or "").split(","):
        name, _, value = part.partition(":")
        count = value.removesuffix("+")
        if name in ("o", "e") and count.isdigit():
            stream = "stdout" if name == "o" else "stderr"
            taken[stream], partial[stream] = int(count), value.endswith("+")
    return taken, partial


def _format_cursor(taken: dict[str, int], partial: dict[str, bool]) -> str:
    def one(name: str) -> str:
        return f"{taken[name]}{'+' if partial[name] else ''}"

    return f"o:{one('stdout')},e:{one('stderr')}"
