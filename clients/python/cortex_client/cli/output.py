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


SPARKS = "▁▂▃▄▅▆▇█"
SPARKLINE_WIDTH = 60


def sparkline(values: Sequence[float | None], width: int = SPARKLINE_WIDTH) -> str:
    """One character per value, from ▁ (the least) to █ (the most); a space for no value.
    More values than `width` are averaged into `width` cells."""
    cells: list[float | None] = list(values)
    if len(cells) > width:
        step = len(cells) / width
        groups = [cells[int(i * step) : int((i + 1) * step)] for i in range(width)]
        cells = [_mean([v for v in group if v is not None]) for group in groups]
    found = [v for v in cells if v is not None]
    if not found:
        return " " * len(cells)
    low, span = min(found), max(found) - min(found)
    top = len(SPARKS) - 1

    def cell(value: float | None) -> str:
        if value is None:
            return " "
        if span == 0:  # flat: at the top, unless it is flat at nothing
            return SPARKS[top if value > 0 else 0]
        return SPARKS[round((value - low) / span * top)]

    return "".join(cell(v) for v in cells)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def size(value: float) -> str:
    """Bytes, in the unit that reads best (B, KiB, MiB, GiB)."""
    for unit in ("B", "KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


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
