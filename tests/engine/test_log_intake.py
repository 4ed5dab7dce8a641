"""Log intake at the source's pace: a big log is stored in committed batches, each line
exactly once and in order, also when the gateway storing it is killed half-way; lines reach a
live follower while the job still runs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.test_gateway_process import Gateway
from tests.engine.conftest import busybox, submit, wait_for
from tests.factories import API, Keys

LINES = 400_000


@pytest.fixture
def gateway_env(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield dict(
        os.environ,
        DATABASE_URL=database_url,
        CORTEX_DATA_DIR=str(tmp_path / "unused"),
        CORTEX_ENGINE_LEASE_SECONDS="2",
        CORTEX_ENGINE_POLL_INTERVAL="0.2",
    )


def http_client(gateway: Gateway, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=gateway.url.removesuffix(API), headers={"Authorization": f"Bearer {key}"}
    )


async def stored(db: AsyncEngine, job_id: str) -> dict[str, Any]:
    """What is stored of a job printing `seq 1 N`: each line's text is its own number."""
    async with db.connect() as connection:
        row = (
            await connection.execute(
                sa.text(
                    "SELECT count(*) AS lines, count(DISTINCT line) AS texts, max(seq) AS last,"
                    " coalesce(bool_and(line = seq::text), true) AS in_order,"
                    " (SELECT log_seq FROM jobs WHERE id = :id) AS log_seq"
                    " FROM log_lines WHERE job_id = :id"
                ),
                {"id": job_id},
            )
        ).one()
    return dict(row._mapping)


async def test_a_gateway_killed_half_way_through_a_big_log_leaves_every_line_stored_once(
    gateway_env: dict[str, str], tmp_path: Path, keys: Keys, db: AsyncEngine
) -> None:
    key = await keys.create()
    first = Gateway(gateway_env, tmp_path / "first.log")
    try:
        first.wait_until_serving()
        async with http_client(first, key) as client:
            job_id = await submit(client, busybox(f"seq 1 {LINES}", duration=600))
            deadline = time.monotonic() + 120
            while True:
                at_kill = await stored(db, job_id)
                if 0 < at_kill["lines"] < LINES // 2:
                    break
                assert at_kill["lines"] < LINES // 2, "the log was stored before the kill"
                assert time.monotonic() < deadline, f"no line stored: {at_kill}"
                await asyncio.sleep(0.02)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.kill()
    # Killed in the middle: part of the log is stored, as whole committed batches.
    after_kill = await stored(db, job_id)
    assert 0 < after_kill["lines"] < LINES
    assert after_kill["lines"] == after_kill["log_seq"]

    second = Gateway(gateway_env, tmp_path / "second.log")
    try:
        second.wait_until_serving()
        async with http_client(second, key) as client:
            job = await wait_for(client, job_id, timeout=180)
    finally:
        second.kill()

    assert job["status"] == "completed", job
    final = await stored(db, job_id)
    assert final == {
        "lines": LINES,
        "texts": LINES,
        "last": LINES,
        "in_order": True,
        "log_seq": LINES,
    }


async def follow_logs(client: httpx.AsyncClient, job_id: str, seen: list[tuple[float, str]]) -> str:
    """Read the job's live log stream to its end, noting when each line arrived."""
    event = ""
    url = f"{API}/jobs/{job_id}/logs"
    async with client.stream(
        "GET", url, params={"follow": "true"}, timeout=httpx.Timeout(5, read=None)
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data = json.loads(line.partition(":")[2])
                if event == "end":
                    return str(data["status"])
                seen.append((time.monotonic(), data["line"]))
            elif not line:
                event = ""
    raise AssertionError("the stream closed without an end event")


async def test_a_live_follower_gets_each_line_while_the_job_runs_in_order(
    gateway_env: dict[str, str], tmp_path: Path, keys: Keys
) -> None:
    key = await keys.create()
    gateway = Gateway(gateway_env, tmp_path / "gateway.log")
    try:
        gateway.wait_until_serving()
        async with http_client(gateway, key) as client:
            script = "for i in $(seq 1 20); do echo tick $i; sleep 0.25; done"
            job_id = await submit(client, busybox(script))
            await wait_for(client, job_id, {"running"})
            seen: list[tuple[float, str]] = []
            end = await follow_logs(client, job_id, seen)
            job = await wait_for(client, job_id)
    finally:
        gateway.kill()

    assert end == "completed"
    assert [line for _, line in seen] == [f"tick {i}" for i in range(1, 21)]
    # Delivered as printed (a line every 0.25 s), not all at the end: the first ten lines
    # arrived over more than a second, while the job still ran.
    assert seen[9][0] - seen[0][0] > 1.0
    assert job["status"] == "completed"
