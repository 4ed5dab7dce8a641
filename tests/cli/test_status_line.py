"""The status line of `cortex jobs submit --wait`, read from a pseudo-terminal as a person at a
terminal sees it, and as plain lines when stderr is not a terminal."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.spinner import Spinner

from cortex_client import Job
from cortex_client.cli.status_line import Reading
from tests.cli.conftest import COMMAND_SECONDS, Cortex
from tests.client.gateway import served
from tests.factories import Keys

# ANSI control sequences (colours, cursor moves, erasing lines) and the other control bytes.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|[\x00-\x08\x0b-\x1f\x7f]")
# Local jobs at 3600 USD per CPU-hour: a 1-CPU job costs a dollar a second, visibly.
PRICE = 3600.0


async def on_a_terminal(cortex: Cortex, *args: str) -> tuple[int, str]:
    """Run `cortex` with stdout and stderr on a pseudo-terminal; its exit code, and everything
    the terminal received (control sequences included)."""
    leader, follower = os.openpty()
    env = {**cortex.env, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
    env.pop("NO_COLOR", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cortex_client.cli", *args,
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    received = bytearray()

    def read_all() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not chunk:
                return
            received.extend(chunk)

    try:
        async with asyncio.timeout(COMMAND_SECONDS):
            await asyncio.gather(asyncio.to_thread(read_all), process.wait())
    finally:
        os.close(leader)
    assert process.returncode is not None
    return process.returncode, received.decode(errors="replace")


def screens(received: str) -> list[str]:
    """The lines the terminal showed, one per redraw or newline, without control sequences."""
    pieces = re.split(r"\r\n|\r|\n|\x1b\[2K|\x1b\[1A", received)
    return [text for piece in pieces if (text := _CONTROL.sub("", piece).strip())]


async def test_submit_wait_on_a_terminal_shows_status_and_cost_above_the_logs(
    tmp_path: Path, database_url: str, keys: Keys
) -> None:
    api_key = await keys.create(account="alpha", scope=("admin",))
    async with served(database_url, local_usd_per_cpu_hour=PRICE) as url:
        cortex = Cortex(tmp_path / "config", CORTEX_URL=url, CORTEX_API_KEY=api_key)
        code, received = await on_a_terminal(
            cortex,
            "jobs", "submit", "--provider", "local", "--image", "busybox:latest",
            "--memory", "64Mi", "--wait", "--", "sh", "-c", "echo started; sleep 3; echo done",
        )  # fmt: skip
    assert code == 0, received
    assert "\x1b[" in received, "drawn as a terminal line, not plain text"
    shown = screens(received)
    job_id = next(line for line in shown if line.startswith("job_"))
    status_lines = [line for line in shown if job_id in line and "$" in line]
    assert any(" running " in f" {line} " for line in status_lines), shown
    costs = [float(cost) for line in status_lines for cost in re.findall(r"\$(\d+\.\d+)", line)]
    assert max(costs) > 0, f"the cost so far grows while it runs: {status_lines}"
    assert "started" in shown and "done" in shown  # the logs, above the line
    assert not any(line.startswith(f"{job_id}:") for line in shown), "no plain status lines"


async def test_submit_wait_without_a_terminal_prints_a_plain_line_per_change(
    cortex: Cortex,
) -> None:
    result = await cortex(
        "jobs", "submit", "--provider", "local", "--image", "busybox:latest",
        "--memory", "64Mi", "--wait", "--", "sh", "-c", "sleep 2; echo done",
    )  # fmt: skip
    assert (result.code, result.stdout) == (0, "done\n"), result
    lines = result.stderr.splitlines()
    job_id = lines[0]
    assert lines[1] == f"{job_id}: pending (cost so far $0.0000)"
    assert f"{job_id}: running (cost so far $0.0000)" in lines
    assert lines[-1] == f"{job_id}: completed (cost $0.0000)"
    assert "\x1b" not in result.stderr


def job_as_sent(**fields: Any) -> Job:
    """A job as a gateway sends it, with fields this client may not declare."""
    now = datetime.now(UTC).isoformat()
    return Job.model_validate(
        {
            "id": "job_0123456789abcdef", "provider": "local", "status": "running",
            "image": "busybox:latest", "cpu": 1000, "memory": "64Mi", "storage": "1Gi",
            "duration": 60, "createdAt": now, "startedAt": now, "endedAt": None,
            "cost": {"current": 0.0125, "projected": 0.06, "currency": "USD"},
            "config": {}, "results": {}, "events": [], **fields,
        }
    )  # fmt: skip


class TestProgress:
    def test_a_jobs_progress_and_status_message_show_as_a_bar_and_text(self) -> None:
        reading = Reading.of(job_as_sent(progress=40, statusMessage="shard 3/8"))
        terminal = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
        terminal.print(reading.live("job_0123456789abcdef", Spinner("dots")))
        line = terminal.file.getvalue()  # type: ignore[attr-defined]
        assert "running" in line and " 40%" in line and "shard 3/8" in line
        assert "$0.0125" in line
        bar = re.search(r"━+", line)
        assert bar is not None and 6 <= len(bar.group()) <= 10, line  # 40 % of 20 cells
        assert reading.plain("job_0123456789abcdef") == (
            "job_0123456789abcdef: running 40% shard 3/8 (cost so far $0.0125)"
        )

    def test_without_progress_there_is_no_bar(self) -> None:
        reading = Reading.of(job_as_sent())
        assert (reading.progress, reading.message) == (None, None)
        terminal = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
        terminal.print(reading.live("job_0123456789abcdef", Spinner("dots")))
        assert "━" not in terminal.file.getvalue()  # type: ignore[attr-defined]
