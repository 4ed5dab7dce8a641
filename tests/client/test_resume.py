"""A followed stream outlives the gateway process: killed outright (no goodbye, connections
reset) and started again, the client resumes where it was."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from cortex_client import AsyncClient
from tests.client.gateway import GatewayProcess

SCRIPT = "i=1; while [ $i -le 60 ]; do echo line $i; i=$((i+1)); sleep 0.1; done"


async def test_follow_logs_and_events_resume_after_the_gateway_is_killed(
    tmp_path: Path, database_url: str, api_key: str
) -> None:
    gateway = GatewayProcess(database_url, tmp_path / "gateway.log")
    await asyncio.to_thread(gateway.start)
    try:
        async with AsyncClient(url=gateway.url, api_key=api_key) as cortex:
            job = await cortex.jobs.submit(
                provider="local",
                image="busybox:latest",
                cpu=250,
                memory="32Mi",
                storage="1Gi",
                duration=60,
                command=["sh", "-c", SCRIPT],
            )
            lines: list[str] = []
            events: list[str] = []

            async def follow_events() -> None:
                async for event in cortex.jobs.follow_events(job.id):
                    events.append(event.type)

            watcher = asyncio.create_task(follow_events())
            async with asyncio.timeout(120):
                async for entry in cortex.jobs.follow_logs(job.id):
                    lines.append(entry.line)
                    if len(lines) == 5:
                        await asyncio.to_thread(gateway.stop, signal.SIGKILL)
                        await asyncio.to_thread(gateway.start)
                await watcher
        assert lines == [f"line {i}" for i in range(1, 61)]
        assert events[0] == "created" and events[-1] == "completed"
        assert len(events) == len(set(events)), events
    finally:
        await asyncio.to_thread(gateway.stop)
