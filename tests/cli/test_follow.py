"""`cortex jobs logs -f` across a gateway restart, and Ctrl-C while following."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from tests.cli.conftest import Cortex
from tests.client.gateway import GatewayProcess

COUNT_TO = "i=1; while [ $i -le {n} ]; do echo line $i; i=$((i+1)); sleep {pause}; done"


async def test_logs_follow_survives_a_gateway_restart_without_losing_or_repeating_a_line(
    tmp_path: Path, database_url: str, api_key: str
) -> None:
    gateway = GatewayProcess(database_url, tmp_path / "gateway.log")
    await asyncio.to_thread(gateway.start)
    try:
        cortex = Cortex(tmp_path / "config", CORTEX_URL=gateway.url, CORTEX_API_KEY=api_key)
        script = COUNT_TO.format(n=80, pause=0.1)
        submitted = await cortex(
            "jobs", "submit", "--provider", "local", "--image", "busybox:latest",
            "--", "sh", "-c", script,
        )  # fmt: skip
        job_id = submitted.stdout.strip()
        follower = await cortex.start("jobs", "logs", "-f", job_id)
        assert follower.stdout is not None
        before = []
        async with asyncio.timeout(60):
            while len(before) < 10:
                before.append((await follower.stdout.readline()).decode())

        first_pid = gateway.process.pid if gateway.process else None
        await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(gateway.start)
        assert gateway.process is not None and gateway.process.pid != first_pid

        async with asyncio.timeout(120):
            rest, err = await follower.communicate()
        assert follower.returncode == 0, err.decode()
        lines = "".join(before) + rest.decode()
        assert lines.splitlines() == [f"line {i}" for i in range(1, 81)]
    finally:
        await asyncio.to_thread(gateway.stop)


async def test_ctrl_c_stops_following_cleanly(cortex: Cortex) -> None:
    submitted = await cortex(
        "jobs", "submit", "--provider", "local", "--image", "busybox:latest",
        "--", "sh", "-c", COUNT_TO.format(n=600, pause=0.1),
    )  # fmt: skip
    job_id = submitted.stdout.strip()
    for command in (("jobs", "logs", "-f", job_id), ("jobs", "events", job_id, "-f")):
        follower = await cortex.start(*command)
        assert follower.stdout is not None
        async with asyncio.timeout(60):
            assert await follower.stdout.readline()
        follower.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            _, err = await follower.communicate()
        assert follower.returncode == 130
        assert err.decode() == ""
    assert (await cortex("jobs", "cancel", job_id)).code == 0

    waiting = await cortex.start(
        "jobs", "submit", "--provider", "local", "--image", "busybox:latest", "--wait",
        "--", "sh", "-c", COUNT_TO.format(n=600, pause=0.1),
    )  # fmt: skip
    assert waiting.stdout is not None
    async with asyncio.timeout(60):
        assert await waiting.stdout.readline() == b"line 1\n"
    waiting.send_signal(signal.SIGINT)
    async with asyncio.timeout(10):
        _, err = await waiting.communicate()
    assert waiting.returncode == 130
    assert "; it goes on (`cortex jobs cancel" in err.decode()
    assert "Traceback" not in err.decode()
    for job in json.loads((await cortex("jobs", "list", "--json")).stdout):
        if job["status"] not in ("completed", "failed", "cancelled"):
            await cortex("jobs", "cancel", job["id"])
