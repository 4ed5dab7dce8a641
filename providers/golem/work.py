"""The job's work on a Golem activity: one ExeScript batch (deploy, start, run) and a follower
that reads its results while it runs.

yagna streams a batch's runtime events over SSE (`Accept: text/event-stream`), but only those
that happen while a client listens; with `capture: stream` and no limit, the exe-unit also
keeps the whole output and returns it in the `run` command's result once it finishes
(yagna exe-unit/src/output.rs). So the follower shows lines live when it has listened since
before the command started, and otherwise (after a gateway restart) takes them from the
finished result: a log cursor counts characters taken from each stream, which name the same
lines either way.
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

from providers.errors import Unavailable
from providers.golem.yagna import ACTIVITY, Yagna, YagnaError, dumps, parse_sse
from providers.types import LogLine

logger = logging.getLogger(__name__)

DEPLOY, START, RUN = 0, 1, 2
STREAMS = ("stdout", "stderr")
# Lines handed over per logs() call, so one noisy job cannot flood a transaction.
MAX_LINES_PER_READ = 5_000
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
    # What was streamed since listening began: per stream, the text and (end offset, time).
    live: dict[str, str] = field(default_factory=lambda: dict.fromkeys(STREAMS, ""))
    marks: dict[str, list[tuple[int, datetime]]] = field(
        default_factory=lambda: {name: [] for name in STREAMS}
    )
    # True once the follower is known to have seen the run command from its start.
    from_start: bool | None = None
    run_started_at: datetime | None = None
    outcome: Outcome | None = None
    # The finished run's whole output, from its result, and when it was recorded.
    final: dict[str, str] | None = None
    final_at: datetime | None = None
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
        return self.outcome is not None and (self.final is not None or self.outcome.index != RUN)

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
                self.live[name] += _output_text(kind[name])
                self.marks[name].append((len(self.live[name]), moment))
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
                if index == RUN:
                    self.final = {name: _output_text(result.get(name)) for name in STREAMS}
                    self.final_at = _parse_time(result.get("eventDate"))
                self._news.set()

    # -- lines ---------------------------------------------------------------------------------

    def lines_after(self, cursor: str | None) -> tuple[list[LogLine], str | None]:
        """Complete lines after `cursor` (every line, the last unterminated one too, once
        the run ended) and the cursor that follows them."""
        taken = _parse_cursor(cursor)
        if self.final is not None:
            texts = self.final
            stamp = self.final_at or datetime.now(UTC)
            marks = {name: [(len(texts[name]), stamp)] for name in STREAMS}
            if self.from_start:
                marks = {name: [*self.marks[name], (len(texts[name]), stamp)] for name in STREAMS}
            ended = True
        elif self.from_start:
            texts, marks, ended = self.live, self.marks, False
        else:
            return [], cursor
        found: list[tuple[datetime, int, str, int, str]] = []
        for order, name in enumerate(STREAMS):
            for end, moment, line in _split(texts[name], taken[name], marks[name], ended):
                found.append((moment, order, name, end, line))
        found.sort(key=lambda item: (item[0], item[1]))
        found = found[:MAX_LINES_PER_READ]
        for _, _, name, end, _ in found:
            taken[name] = max(taken[name], end)
        lines = [LogLine(moment, line, name) for moment, _, name, _, line in found]
        return lines, _format_cursor(taken)


def _code_from(message: Any) -> int | None:
    match = _EXIT_CODE.search(str(message or ""))
    return int(match.group(1)) if match else None


def _split(
    text: str, start: int, marks: list[tuple[int, datetime]], ended: bool
) -> list[tuple[int, datetime, str]]:
    """Lines of `text` from `start`: (offset after the line, when it was complete, line)."""
    found = []
    position = start
    while True:
        newline = text.find("\n", position)
        if newline < 0:
            if ended and position < len(text):
                found.append((len(text), _when(marks, len(text)), text[position:]))
            return found
        end = newline + 1
        found.append((end, _when(marks, end), text[position:newline].removesuffix("\r")))
        position = end


def _when(marks: list[tuple[int, datetime]], offset: int) -> datetime:
    for end, moment in marks:
        if end >= offset:
            return moment
    return marks[-1][1] if marks else datetime.now(UTC)


def _parse_cursor(cursor: str | None) -> dict[str, int]:
    taken = dict.fromkeys(STREAMS, 0)
    for part in (cursor or "").split(","):
        name, _, value = part.partition(":")
        if name in ("o", "e") and value.isdigit():
            taken["stdout" if name == "o" else "stderr"] = int(value)
    return taken


def _format_cursor(taken: dict[str, int]) -> str:
    return f"o:{taken['stdout']},e:{taken['stderr']}"
