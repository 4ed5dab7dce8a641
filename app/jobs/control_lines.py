"""Control lines: how a workload reports its own progress, on any network.

A workload prints a line on its stdout such as

    ::cortex {"progress": 40, "message": "shard 3/8"}
    ::cortex {"outputUrl": "https://example.com/results/run-17.tar.gz"}

and the gateway, which reads every job's log wherever it runs, sets the job's `progress`,
`statusMessage` and declared output URL from it. This module is the pure part: one line of
text in, what it sets (or None) out. It knows nothing of jobs or the database.

A line that is not a valid control line is ignored for the job's state (and, like every
control line, kept in the job's log as printed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PREFIX = "::cortex"
# Longer lines are never control lines (read before any JSON is parsed).
MAX_LINE_CHARS = 4096
MAX_MESSAGE_CHARS = 200
MAX_URL_CHARS = 2048
# The keys a control line may carry, and the job column each sets.
COLUMNS = {"progress": "progress", "message": "status_message", "outputUrl": "output_url"}


@dataclass(frozen=True)
class ControlUpdate:
    """What one control line sets, as job columns (`progress`, `status_message`,
    `output_url`); a key the line did not name is absent, and null clears a value."""

    columns: dict[str, int | str | None] = field(default_factory=dict)

    def then(self, later: ControlUpdate) -> ControlUpdate:
        """This update followed by `later`: the later line's values win."""
        return ControlUpdate({**self.columns, **later.columns})


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not a number a control line may carry")


def _progress(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("progress must be a number")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise ValueError("progress must be between 0 and 100")
    return int(value)  # fractions are rounded down: 99.9 is not done yet


def _printable(value: str) -> bool:
    return not any(ord(char) < 32 or ord(char) == 127 for char in value)


def _message(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_MESSAGE_CHARS or not _printable(value):
        raise ValueError(f"message must be text of at most {MAX_MESSAGE_CHARS} characters")
    return value


def _output_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_URL_CHARS or not _printable(value):
        raise ValueError(f"outputUrl must be a URL of at most {MAX_URL_CHARS} characters")
    if " " in value:
        raise ValueError("outputUrl must not contain spaces")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("outputUrl must be an http or https URL with a host")
    return value


_VALIDATORS = {"progress": _progress, "message": _message, "outputUrl": _output_url}


def parse_control_line(text: str) -> ControlUpdate | None:
    """The update a log line asks for, or None when it is not a (valid) control line.

    Valid: `::cortex`, whitespace, then one JSON object of 1 to 3 of the keys `progress`
    (a number 0-100, fractions rounded down, or null), `message` (text of at most 200
    printable characters, or null) and `outputUrl` (an http(s) URL of at most 2048
    characters, or null), the whole line at most 4096 characters. Anything else (invalid
    JSON, another key, a value out of range) makes the whole line no control line."""
    if not text.startswith(PREFIX):
        return None
    text = text.rstrip()
    if len(text) > MAX_LINE_CHARS:
        return None
    rest = text[len(PREFIX) :]
    if not rest[:1].isspace() or not rest.lstrip().startswith("{"):
        return None
    try:
        body = json.loads(rest, parse_constant=_no_constants)
    except ValueError:  # JSONDecodeError, and NaN or Infinity
        return None
    if not isinstance(body, dict) or not body or not set(body) <= set(COLUMNS):
        return None
    try:
        return ControlUpdate({COLUMNS[key]: _VALIDATORS[key](body[key]) for key in body})
    except ValueError:
        return None


def parse_control_lines(lines: Iterable[str]) -> ControlUpdate | None:
    """The lines' control lines folded into one update (later lines win), or None when
    there are none. Lines without the prefix cost one string comparison."""
    update: ControlUpdate | None = None
    for line in lines:
        if not line.startswith(PREFIX):
            continue
        parsed = parse_control_line(line)
        if parsed is not None:
            update = parsed if update is None else update.then(parsed)
    return update
