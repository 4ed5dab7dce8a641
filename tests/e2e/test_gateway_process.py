"""The gateway as users run it: `cortex-gateway serve` in its own process, over real HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine.conftest import containers_of
from tests.factories import API, job_spec
from tests.servers import free_port

KEY = re.compile(r"cgw_[A-Za-z0-9_-]{20,}")
STARTUP_SECONDS = 60


class Gateway:
    """One `cortex-gateway serve` process, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None):
        self.env = env
        self.port = port or free_port()
        self.log = log
        self.output = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port)],
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}{API}"

    def wait_until_serving(self) -> str:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited early:\n{self.text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self.text()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gateway did not start in {STARTUP_SECONDS}s:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text()

    def interrupt(self) -> int:
        """Ctrl-C, as a user at the terminal would."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=30)
        self.output.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.output.close()


def cli(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def embedded_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["CORTEX_DATA_DIR"] = str(tmp_path / "data")
    yield env


def postgres_running(data_dir: str) -> bool:
    pid_file = Path(data_dir) / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_keeps_data_across_restarts_and_stops_cleanly(
    embedded_env: dict[str, str], tmp_path: Path
) -> None:
    gateway = Gateway(embedded_env, tmp_path / "first.log")
    try:
        output = gateway.wait_until_serving()
        assert "Created the first API key" in output
        admin_key = KEY.findall(output)[0]
        assert f"{gateway.url}/jobs" in output
        admin = {"Authorization": f"Bearer {admin_key}"}

        created = httpx.post(f"{gateway.url}/jobs", json=job_spec(), headers=admin)
        assert created.status_code == 201
        job_id = created.json()["data"]["id"]

        # Key commands attach to the running gateway's database.
        made = cli(embedded_env, "keys", "create", "--name", "reader", "--scope", "jobs:read")
        assert made.returncode == 0, made.stderr
        reader_key = made.stdout.strip().splitlines()[-1]
        assert KEY.fullmatch(reader_key)
        reader = {"Authorization": f"Bearer {reader_key}"}
        assert httpx.get(f"{gateway.url}/jobs/{job_id}", headers=reader).status_code == 200
        assert httpx.post(f"{gateway.url}/jobs", json=job_spec(), headers=reader).status_code == 403

        listing = cli(embedded_env, "keys", "list")
        assert "reader" in listing.stdout and reader_key not in listing.stdout
        reader_id = next(
            line.split()[0] for line in listing.stdout.splitlines() if " reader " in line
        )
        assert cli(embedded_env, "keys", "revoke", reader_id).returncode == 0
        refused = False
        for _ in range(20):  # the revocation reaches the gateway as a notification
            refused = httpx.get(f"{gateway.url}/jobs", headers=reader).status_code == 401
            if refused:
                break
            time.sleep(0.05)
        assert refused

        assert gateway.interrupt() == 0
        assert "Gateway stopped." in gateway.text()
        assert not postgres_running(embedded_env["CORTEX_DATA_DIR"])
    finally:
        gateway.kill()

    again = Gateway(embedded_env, tmp_path / "second.log")
    try:
        output = again.wait_until_serving()
        assert "Created the first API key" not in output
        assert not KEY.search(output)
        job = httpx.get(f"{again.url}/jobs/{job_id}", headers=admin)
        assert job.status_code == 200
        assert job.json()["data"]["id"] == job_id
        assert httpx.get(f"{again.url}/jobs", headers=reader).status_code == 401
        assert again.interrupt() == 0
    finally:
        again.kill()


def test_key_commands_work_without_a_running_gateway(embedded_env: dict[str, str]) -> None:
    made = cli(embedded_env, "keys", "create", "--name", "ops", "--account", "acme")
    assert made.returncode == 0, made.stderr
    assert "account acme" in made.stdout
    assert "jobs:read jobs:write" in made.stdout
    assert KEY.fullmatch(made.stdout.strip().splitlines()[-1])
    assert not postgres_running(embedded_env["CORTEX_DATA_DIR"])

    bad = cli(embedded_env, "keys", "create", "--name", "x", "--scope", "root")
    assert bad.returncode == 2
    assert "unknown scope 'root'" in bad.stderr

    missing = cli(embedded_env, "keys", "revoke", "key_0000000000000000")
    assert missing.returncode == 1
    assert "no API key" in missing.stderr


def test_two_gateways_share_one_database(database_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, DATABASE_URL=database_url, CORTEX_DATA_DIR=str(tmp_path / "unused"))
    first, second = Gateway(env, tmp_path / "a.log"), Gateway(env, tmp_path / "b.log")
    try:
        outputs = [first.wait_until_serving(), second.wait_until_serving()]
        announcing = [output for output in outputs if "Created the first API key" in output]
        assert len(announcing) == 1, "exactly one process creates the first key"
        headers = {"Authorization": f"Bearer {KEY.findall(announcing[0])[0]}"}

        sleeper = job_spec(command=["sleep", "60"])
        created = httpx.post(f"{first.url}/jobs", json=sleeper, headers=headers)
        job_id = created.json()["data"]["id"]
        cancelled = httpx.post(f"{second.url}/jobs/{job_id}/cancel", headers=headers)
        assert cancelled.json()["data"]["status"] in ("cancelled", "cancelling")

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = httpx.get(f"{first.url}/jobs/{job_id}", headers=headers).json()["data"]
            if seen["status"] == "cancelled":
                break
            time.sleep(0.2)
        assert seen["status"] == "cancelled"
        assert not (tmp_path / "unused").exists()
        # The container goes once the job is released: leave nothing behind in the runtime.
        while asyncio.run(containers_of(job_id)) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        first.kill()
        second.kill()
