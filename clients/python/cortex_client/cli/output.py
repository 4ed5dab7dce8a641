"""How `cortex` shows things: tables and plain lines for people, JSON for scripts, errors as
code and message on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from cortex_client import LogEntry, errors

# Piped output is read by scripts: wide enough that no table cell is wrapped or cut.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def dump(value: BaseModel | Iterable[BaseModel]) -> None:
    """JSON on stdout, in the API's own shapes (camelCase), one document."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json", by_alias=True)
    else:
        data = [item.model_dump(mode="json", by_alias=True) for item in value]
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def line(text: str) -> None:
    """A line on stdout as it is (no markup), flushed at once for live output."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def log(entry: LogEntry) -> None:
    """A job's log line where the job wrote it: its stderr on ours, the rest on stdout."""
    stream = sys.stderr if entry.stream == "stderr" else sys.stdout
    stream.write(entry.line + "\n")
    stream.flush()


def note(text: str) -> None:
    err.print(text, markup=False)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    grid = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    out.print(grid)


def when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def api_error(exc: errors.ApiError) -> None:
    err.print(f"error: {exc.code}: {exc.message}", markup=False)
    for detail in exc.details:
        field = detail.get("field") or ""
        message = detail.get("message") or ""
        err.print(f"  {field}: {message}" if field else f"  {message}", markup=False)


def failure(text: str) -> None:
    err.print(f"error: {text}", markup=False)
