"""kill -9 of the gateway while a Golem job runs: the next gateway carries on from the stored
handle and log cursor, and the daemon never sees a second agreement or activity."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_gateway_process import Gateway
from tests.engine.conftest import log_lines, submit, wait_for
from tests.engine.test_recovery import http_client
from tests.factories import Keys
from tests.fakes.golem import APP_KEY
from tests.fakes.golem.process import FakeYagnaProcess
from tests.providers.golem.test_jobs import golem_job


@pytest.fixture
def yagna(tmp_path: Path) -> Iterator[FakeYagnaProcess]:
    process = FakeYagnaProcess(tmp_path / "yagna.log", "--deploy-seconds", "0.2")
    yield process
    process.stop()


@pytest.fixture
def gateway_env(database_url: str, tmp_path: Path, yagna: FakeYagnaProcess) -> dict[str, str]:
    return dict(
        os.environ,
        DATABASE_URL=database_url,
        CORTEX_DATA_DIR=str(tmp_path / "unused"),
        CORTEX_ENGINE_LEASE_SECONDS="2",
        CORTEX_ENGINE_POLL_INTERVAL="0.2",
        CORTEX_GOLEM_API_URL=yagna.url,
        CORTEX_GOLEM_REGISTRY_URL=yagna.url,
        CORTEX_GOLEM_APP_KEY=APP_KEY,
        CORTEX_GOLEM_POLL_INTERVAL="0.1",
    )


async def test_a_killed_gateway_s_golem_job_finishes_under_the_next_with_every_line_once(
    gateway_env: dict[str, str], tmp_path: Path, keys: Keys, yagna: FakeYagnaProcess
) -> None:
    key = await keys.create()
    first = Gateway(gateway_env, tmp_path / "first.log")
    try:
        first.wait_until_serving()
        async with http_client(first, key) as client:
            script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 0.4; done; exit 3"
            job_id = await submit(client, golem_job(script))
            await wait_for(client, job_id, {"running"}, timeout=60)
            while len(await log_lines(client, job_id)) < 3:
                await asyncio.sleep(0.1)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.kill()

    second = Gateway(gateway_env, tmp_path / "second.log")
    try:
        second.wait_until_serving()
        async with http_client(second, key) as client:
            job = await wait_for(client, job_id, timeout=90)
            lines = await log_lines(client, job_id)
            while yagna.held(job_id):
                await asyncio.sleep(0.2)
    finally:
        second.kill()

    assert (job["status"], job["results"]["exitCode"], job["results"]["reason"]) == (
        "failed",
        3,
        "exit_code",
    )
    assert lines == [f"line {i}" for i in range(1, 11)]
    assert [e["type"] for e in job["events"]].count("started") == 1
    summary = yagna.summary()
    assert len(summary["agreements"]) == 1  # type: ignore[arg-type]
    assert len(summary["activities"]) == 1  # type: ignore[arg-type]
    assert set(summary["invoices"].values()) == {"ACCEPTED"}  # type: ignore[attr-defined]
