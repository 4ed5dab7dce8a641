"""What `cortex jobs submit --wait` shows of a job while its logs stream: its status, the status
message, a progress bar and the cost so far.

On a terminal it is one live line on stderr below the logs, redrawn in place; otherwise (a pipe,
a file, CI) a plain line on stderr each time the status, the message or the progress changes.
The job is read again every POLL_SECONDS by a thread beside the log stream.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from cortex_client import Client, Job
from cortex_client.cli import output

# Status and cost change by themselves (cost accrues by the second): one read per second.
POLL_SECONDS = 1.0
BAR_WIDTH = 20
FINISHED = frozenset({"completed", "failed", "cancelled"})
STATUS_STYLES = {
    "pending": "yellow",
    "scheduled": "yellow",
    "running": "cyan",
    "cancelling": "magenta",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


@dataclass(frozen=True)
class Reading:
    """What the line shows of a job at one moment."""

    status: str
    message: str | None
    progress: float | None  # 0-100
    cost: str

    @classmethod
    def of(cls, job: Job) -> Reading:
        progress = _optional(job, "progress", "progress")
        message = _optional(job, "status_message", "statusMessage")
        return cls(
            status=job.status,
            message=str(message) if message else None,
            progress=min(max(float(progress), 0.0), 100.0)
            if isinstance(progress, (int, float))
            else None,
            cost=_money(job.cost.current, job.cost.currency),
        )

    def plain(self, job_id: str) -> str:
        """The line as text, for output that is not a terminal."""
        parts = [f"{job_id}: {self.status}"]
        if self.progress is not None:
            parts.append(f"{self.progress:.0f}%")
        if self.message:
            parts.append(self.message)
        spent = "cost" if self.status in FINISHED else "cost so far"
        return " ".join(parts) + f" ({spent} {self.cost})"

    def changed_from(self, other: Reading | None) -> bool:
        """Whether a plain line is due: anything but the cost, which moves every second."""
        return other is None or (self.status, self.message, self.progress) != (
            other.status,
            other.message,
            other.progress,
        )

    def live(self, job_id: str, spinner: Spinner) -> RenderableType:
        """The line as the terminal shows it."""
        grid = Table.grid(padding=(0, 1))
        cells: list[RenderableType] = [
            spinner,
            Text(job_id, style="bold"),
            Text(self.status, style=STATUS_STYLES.get(self.status, "")),
        ]
        if self.progress is not None:
            cells.append(ProgressBar(total=100, completed=self.progress, width=BAR_WIDTH))
            cells.append(Text(f"{self.progress:3.0f}%"))
        if self.message:
            cells.append(Text(self.message, style="italic", overflow="ellipsis", no_wrap=True))
        cells.append(Text(self.cost, style="dim"))
        for _ in cells:
            grid.add_column(no_wrap=True)
        grid.add_row(*cells)
        return Group(grid)


def _optional(job: Job, name: str, alias: str) -> Any:
    """A field this client's model may not declare (newer gateways send it): the attribute,
    or the JSON field kept among the model's extras."""
    value = getattr(job, name, None)
    if value is None and job.model_extra:
        value = job.model_extra.get(alias, job.model_extra.get(name))
    return value


def _money(amount: float, currency: str) -> str:
    return f"${amount:.4f}" if currency == "USD" else f"{amount:.4f} {currency}"


@contextmanager
def shown(client: Client, job: Job) -> Iterator[Callable[[Job], None]]:
    """Show `job`'s status line for as long as the block runs (the block streams its logs);
    it gets a function to show a reading of its own (the job as it ended)."""
    stop = threading.Event()
    if output.err.is_terminal:
        spinner = Spinner("dots")
        with Live(
            Reading.of(job).live(job.id, spinner),
            console=output.err,
            transient=True,
            refresh_per_second=8,
            # The logs go to stdout above the line (when stdout is this terminal too).
            redirect_stdout=sys.stdout.isatty(),
            redirect_stderr=False,
        ) as live:

            def draw(reading: Reading) -> None:
                live.update(reading.live(job.id, spinner))

            watcher = _watch(client, job, stop, draw)
            try:
                yield lambda current: draw(Reading.of(current))
            finally:
                stop.set()
                watcher.join(timeout=POLL_SECONDS * 2)
        return
    last: list[Reading] = []

    def note(reading: Reading) -> None:
        if reading.changed_from(last[-1] if last else None):
            last.append(reading)
            output.note(reading.plain(job.id))

    note(Reading.of(job))
    watcher = _watch(client, job, stop, note)
    try:
        yield lambda current: note(Reading.of(current))
    finally:
        stop.set()
        watcher.join(timeout=POLL_SECONDS * 2)


def _watch(
    client: Client, job: Job, stop: threading.Event, show: Callable[[Reading], None]
) -> threading.Thread:
    def poll() -> None:
        while not stop.wait(POLL_SECONDS):
            try:
                current = client.jobs.get(job.id)
            except Exception:
                # The line is a courtesy: the log stream decides the outcome (and reports a
                # gateway that went away); this thread may outlive the client by a moment.
                continue
            if not stop.is_set():
                show(Reading.of(current))

    watcher = threading.Thread(target=poll, name=f"status {job.id}", daemon=True)
    watcher.start()
    return watcher
