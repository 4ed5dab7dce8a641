"""The container runtime going away under a running job and coming back: the engine carries
on by itself, and the job's log lines are each stored once.

The local provider talks to the runtime through a unix-socket proxy this test controls:
closing it (and every connection through it) is the runtime's API going away while the
containers keep running, as when the Docker or podman service restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import httpx

from app.application import create_app
from tests.engine.conftest import busybox, docker_socket, engine_settings, submit, wait_for
from tests.factories import API, Keys
from tests.servers import lifespan_app

OUTAGE_SECONDS = 8
LINES = 80


class SocketProxy:
    """Forwards a unix socket to the runtime's, until stopped; can be started again."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._connect, path=str(self.path))

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )
        self._writers -= {writer, upstream_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


async def test_a_runtime_restart_loses_and_repeats_no_line(
    database_url: str, keys: Keys, tmp_path: Path
) -> None:
    proxy = SocketProxy(tmp_path / "runtime.sock", docker_socket())
    await proxy.start()
    settings = engine_settings(database_url, docker_host=f"unix://{proxy.path}")
    try:
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create()}"
                script = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.2; done"
                job_id = await submit(client, busybox(script, duration=300))
                async with asyncio.timeout(60):
                    while True:
                        logs = (await client.get(f"{API}/jobs/{job_id}/logs")).json()["data"]
                        if len(logs["logs"]) >= 5:
                            break
                        await asyncio.sleep(0.2)

                await proxy.stop()
                await asyncio.sleep(OUTAGE_SECONDS)
                during = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
                await proxy.start()

                assert during["status"] == "running"
                job = await wait_for(client, job_id, timeout=180)
                assert job["status"] == "completed", job
                stored = (await client.get(f"{API}/jobs/{job_id}/logs")).json()["data"]["logs"]
                assert [entry["seq"] for entry in stored] == list(range(1, LINES + 1))
                assert [entry["line"] for entry in stored] == [
                    f"line {i}" for i in range(1, LINES + 1)
                ]
    finally:
        with contextlib.suppress(AssertionError):
            await proxy.stop()
