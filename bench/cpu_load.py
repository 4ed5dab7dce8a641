"""Who used the machine's cores during a measurement: this run's processes, or others.

The benchmarks share a 2-core machine with other sessions. A figure is only worth what the
machine gave it, so each measured window records, from /proc: the cores the whole machine
was busy (/proc/stat), the cores this run used (this script and its descendants, such as
`cortex-gateway serve` and its workers, plus the embedded PostgreSQL's postmaster and its
backends) and the difference, "other cores": load the run did not cause.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine_latency import CLOCK_TICKS, machine_jiffies


@dataclass
class _Process:
    parent: int
    ticks: int  # user + system of the process itself
    reaped: int  # user + system of its children it has waited for


def _processes() -> dict[int, _Process]:
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = raw.rpartition(")")[2].split()
        found[int(entry.name)] = _Process(
            int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        )
    return found


def _descendants(roots: set[int], table: dict[int, _Process]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, process in table.items():
        children.setdefault(process.parent, []).append(pid)
    found, todo = set(), [root for root in roots if root in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def postmaster_pid(data_dir: Path) -> int | None:
    """The embedded server's postmaster, from its pid file (first line)."""
    try:
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


@dataclass
class Sample:
    wall: float
    busy: int
    total: int
    ours: float  # CPU seconds
    processes: dict[int, float]  # CPU seconds of the pids asked about


class Load:
    """Samples of the machine's load, for `other_cores` between two of them."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster

    def sample(self, watch: tuple[int, ...] = ()) -> Sample:
        table = _processes()
        roots = {os.getpid()} | ({self.postmaster} if self.postmaster else set())
        ours = _descendants(roots, table)
        ticks = sum(table[pid].ticks for pid in ours)
        ticks += sum(table[pid].reaped for pid in roots if pid in table)
        busy, total = machine_jiffies()
        watched = {pid: table[pid].ticks / CLOCK_TICKS for pid in watch if pid in table}
        return Sample(time.monotonic(), busy, total, ticks / CLOCK_TICKS, watched)

    def postgres_seconds(self) -> float:
        table = _processes()
        if self.postmaster is None or self.postmaster not in table:
            return 0.0
        pids = _descendants({self.postmaster}, table)
        ticks = sum(table[pid].ticks for pid in pids) + table[self.postmaster].reaped
        return ticks / CLOCK_TICKS


def between(first: Sample, last: Sample) -> dict[str, Any]:
    """Cores used between two samples: the machine's, this run's, and the others'."""
    wall = max(last.wall - first.wall, 1e-9)
    machine = (last.busy - first.busy) / max(last.total - first.total, 1) * (os.cpu_count() or 1)
    ours = (last.ours - first.ours) / wall
    return {
        "seconds": round(wall, 1),
        "machine_busy_cores": round(machine, 2),
        "this_run_cores": round(ours, 2),
        "other_cores": round(max(machine - ours, 0.0), 2),
        "watched_cores": {
            str(pid): round((seconds - first.processes.get(pid, seconds)) / wall, 2)
            for pid, seconds in last.processes.items()
        },
    }
