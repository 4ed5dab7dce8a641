"""`cortex-gateway serve --workers N` and `--role`, as real processes over real HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_gateway_process import KEY, STARTUP_SECONDS, postgres_running
from tests.factories import API, job_spec
from tests.ops.metrics_text import Scrape
from tests.servers import free_port

WORKER = re.compile(r"Started server process \[(\d+)\]")
OWNERS = """
import asyncio, sys
import sqlalchemy as sa
from app import database, embedded_postgres
from app.settings import Settings

async def owners(url):
    db = database.create_engine(url, pool_size=1)
    async with database.transaction(db) as connection:
        rows = await connection.execute(sa.text(
            "SELECT DISTINCT engine_owner FROM jobs WHERE engine_owner IS NOT NULL"))
        found = [row[0] for row in rows]
    await db.dispose()
    return found

try:
    print(" ".join(asyncio.run(owners(database.resolve_url(Settings())))))
finally:
    embedded_postgres.stop_all()
"""


class Serving:
    """`cortex-gateway serve ARGS` in its own process, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, *arguments: str) -> None:
        self.port = free_port()
        self.log = log
        self.output = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port), *arguments],
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # kill() ends its workers too
        )
        self.top = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.top}{API}"

    def wait_until_ready(self, workers: int = 1) -> str:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.text()}")
            started = self.text().count("Application startup complete.")
            try:
                ready = httpx.get(f"{self.top}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and started >= workers:
                return self.text()
            time.sleep(0.2)
        raise AssertionError(f"serve was not ready in {STARTUP_SECONDS}s:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text()

    def workers(self) -> list[int]:
        return [int(pid) for pid in WORKER.findall(self.text())]

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=60)
        self.output.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.output.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a dead parent) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def wait_for_status(url: str, headers: dict[str, str], job_id: str, status: str) -> Any:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/jobs/{job_id}", headers=headers).json()["data"]
        if job["status"] == status:
            return job
        time.sleep(0.3)
    raise AssertionError(f"{job_id} is {job['status']}, never {status}")


def test_two_workers_share_the_port_and_the_jobs_and_stop_with_the_database(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CORTEX_DATA_DIR"] = str(tmp_path / "data")
    # Two jobs per engine at most: four running jobs need both workers' engines.
    env["CORTEX_ENGINE_MAX_JOBS"] = "2"
    gateway = Serving(env, tmp_path / "serve.log", "--workers", "2")
    try:
        output = gateway.wait_until_ready(workers=2)
        assert "2 worker processes" in output
        assert output.count("Created the first API key") == 1
        headers = {"Authorization": f"Bearer {KEY.findall(output)[0]}"}
        first, second = gateway.workers()
        assert first != second

        spec = job_spec(command=["sh", "-c", "sleep 6; echo done"])
        ids = []
        for _ in range(4):
            created = httpx.post(f"{gateway.url}/jobs", json=spec, headers=headers)
            assert created.status_code == 201, created.text
            ids.append(created.json()["data"]["id"])
        for job_id in ids:
            wait_for_status(gateway.url, headers, job_id, "running")
        owners = subprocess.run(
            [sys.executable, "-c", OWNERS], env=env, capture_output=True, text=True, timeout=60
        )
        assert owners.returncode == 0, owners.stderr
        pids = {owner.split(":")[1] for owner in owners.stdout.split()}
        assert pids == {str(first), str(second)}, owners.stdout
        # Whichever worker answers a scrape, it counts for both.
        for _ in range(6):
            scraped = Scrape(httpx.get(f"{gateway.top}/metrics").text)
            assert scraped.value("cortex_job_submissions_total", provider="local") == 4
            assert scraped.value("cortex_engine_jobs_driving") == 4
            assert scraped.value("cortex_http_requests_total", method="POST") >= 4
        for job_id in ids:
            done = wait_for_status(gateway.url, headers, job_id, "completed")
            assert done["results"]["exitCode"] == 0

        # A worker that dies is replaced; the gateway serves on.
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + STARTUP_SECONDS
        while len(gateway.workers()) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        replacement = gateway.workers()[2]
        gateway.wait_until_ready(workers=3)
        assert httpx.get(f"{gateway.url}/jobs", headers=headers).status_code == 200
        # The dead worker's counts stay counted; what it had open is not open any more.
        for _ in range(6):
            scraped = Scrape(httpx.get(f"{gateway.top}/metrics").text)
            assert scraped.value("cortex_job_submissions_total", provider="local") == 4
            assert scraped.value("cortex_engine_jobs_driving") == 0

        assert gateway.stop(signal.SIGINT) == 0
        assert "Gateway stopped." in gateway.text()
        assert not any(alive(pid) for pid in (second, replacement))
        assert not postgres_running(env["CORTEX_DATA_DIR"])
    finally:
        gateway.kill()


def test_api_and_engine_roles_share_one_database(database_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, DATABASE_URL=database_url, CORTEX_DATA_DIR=str(tmp_path / "unused"))
    # The engine process takes LISTEN and the pruner's lock over its own direct URL.
    direct = dict(env, CORTEX_DIRECT_DATABASE_URL=database_url)
    engine = Serving(direct, tmp_path / "engine.log", "--role", "engine", "--workers", "1")
    api = Serving(env, tmp_path / "api.log", "--role", "api", "--workers", "1")
    try:
        outputs = [engine.wait_until_ready(), api.wait_until_ready()]
        announced = [KEY.findall(output) for output in outputs if KEY.search(output)]
        headers = {"Authorization": f"Bearer {announced[0][0]}"}

        # The engine process answers only probes and metrics.
        assert httpx.get(f"{engine.url}/jobs", headers=headers).status_code == 404
        assert httpx.get(f"{engine.top}/metrics").status_code == 200
        checks = httpx.get(f"{api.top}/readyz").json()["data"]["checks"]
        assert checks["engine"] == "disabled"
        assert httpx.get(f"{engine.top}/readyz").json()["data"]["checks"]["engine"] == "ok"

        spec = job_spec(command=["sh", "-c", "echo from the engine process"])
        created = httpx.post(f"{api.url}/jobs", json=spec, headers=headers)
        assert created.status_code == 201, created.text
        job_id = created.json()["data"]["id"]
        done = wait_for_status(api.url, headers, job_id, "completed")
        assert done["results"]["exitCode"] == 0
        logs = httpx.get(f"{api.url}/jobs/{job_id}/logs", headers=headers).json()["data"]
        assert [line["line"] for line in logs["logs"]] == ["from the engine process"]

        assert api.stop(signal.SIGTERM) == 0
        assert engine.stop(signal.SIGTERM) == 0
    finally:
        api.kill()
        engine.kill()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--role", "web"], "--role must be one of all, api, engine"),
        (["--workers", "0"], "--workers"),
        (["--workers", "65"], "--workers"),
    ],
)
def test_bad_serve_options_are_refused(arguments: list[str], message: str, tmp_path: Path) -> None:
    env = dict(os.environ, CORTEX_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run(
        [sys.executable, "-m", "app", "serve", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "data").exists()
