"""A newcomer's first minutes: `scripts/serve`, then `cortex jobs submit --wait`, nothing else.

scripts/serve runs as a person runs it, with no DOCKER_HOST and no `cortex` configured: it must
find the container runtime through scripts/container-runtime (provisioned for this checkout
before the suite runs, as scripts/test does), log `cortex` in with the first admin key and put
`cortex` on PATH."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.test_gateway_process import STARTUP_SECONDS
from tests.factories import API, Keys
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
JOB_SECONDS = 120


def test_serve_then_the_first_job_prints_hi_and_exits_0(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORTEX_", "DOCKER_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        HOME=str(home),
        PATH=f"{home}/.local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        XDG_CONFIG_HOME=str(home / ".config"),
        CORTEX_DATA_DIR=str(tmp_path / "data"),
    )
    port = free_port()
    log = tmp_path / "serve.log"
    serve = _serve(env, port, log)
    try:
        said = _wait_for(log, "Your first job:", serve)
        assert "local jobs run on the container runtime at unix://" in said
        assert f"logged in to http://127.0.0.1:{port}" in said

        first = subprocess.run(
            ["cortex", "jobs", "submit", "--provider", "local", "--image", "busybox:latest",
             "--wait", "--", "echo", "hi"],
            env=env, capture_output=True, text=True, timeout=JOB_SECONDS,
        )  # fmt: skip
        assert (first.returncode, first.stdout) == (0, "hi\n"), (first, log.read_text())

        key = (tmp_path / "data" / "first-admin-key").read_text().strip()
        jobs = httpx.get(
            f"http://127.0.0.1:{port}{API}/jobs", headers={"Authorization": f"Bearer {key}"}
        )
        assert [job["status"] for job in jobs.json()["data"]] == ["completed"]
    finally:
        _stop(serve)


async def test_without_a_runtime_it_serves_anyway_and_the_provider_says_what_to_do(
    tmp_path: Path, database_url: str, keys: Keys
) -> None:
    # A machine where no runtime answers and none can be installed: every command of the
    # system but podman and apt.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in (Path("/usr/bin"), Path("/bin")):
        for tool in directory.iterdir():
            if tool.name not in {"podman", "apt-get", "apt", "runc", "crun", "docker"}:
                link = bin_dir / tool.name
                if not link.exists():
                    link.symlink_to(tool)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORTEX_", "DOCKER_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        PATH=str(bin_dir),
        DATABASE_URL=database_url,
        CORTEX_DATA_DIR=str(tmp_path / "data"),
    )
    port = free_port()
    log = tmp_path / "serve.log"
    serve = _serve(env, port, log)
    try:
        said = await asyncio.to_thread(_wait_for, log, "Uvicorn running", serve)
        # Its workers listen a moment after the supervisor says so.
        await asyncio.to_thread(_wait_until_answering, port, serve)
        assert "podman cannot be installed here" in said
        assert "serve: no container runtime: the gateway starts" in said

        key = await keys.create(scope=["jobs:read"])
        async with httpx.AsyncClient() as client:
            local = await client.get(
                f"http://127.0.0.1:{port}{API}/providers/local",
                headers={"Authorization": f"Bearer {key}"},
            )
        health = local.json()["data"]["health"]
        assert health["status"] == "unhealthy"
        assert "unix:///var/run/docker.sock is unreachable" in health["reason"]
        assert "podman system service --time=0" in health["reason"]
        assert "DOCKER_HOST" in health["reason"]
    finally:
        _stop(serve)


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as output:
        return subprocess.Popen(
            [str(ROOT / "scripts" / "serve"), "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its helper shell too, ended with it by _stop
        )


def _stop(serve: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as at a terminal: to the whole process group."""
    os.killpg(serve.pid, signal.SIGINT)
    try:
        serve.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(serve.pid, signal.SIGKILL)
        serve.wait()


def _wait_for(log: Path, text: str, process: subprocess.Popen[bytes]) -> str:
    # The first start also creates the embedded database.
    deadline = time.monotonic() + 2 * STARTUP_SECONDS
    while time.monotonic() < deadline:
        said = log.read_text()
        if text in said:
            return said
        if process.poll() is not None:
            raise AssertionError(f"scripts/serve exited early:\n{said}")
        time.sleep(0.2)
    raise AssertionError(f"scripts/serve never said {text!r}:\n{log.read_text()}")


def _wait_until_answering(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{API}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise AssertionError("scripts/serve exited early")
        time.sleep(0.2)
    raise AssertionError(f"scripts/serve did not answer on port {port}")
