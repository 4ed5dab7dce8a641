"""The fake yagna as its own process (`python -m tests.fakes.golem`), for tests that kill and
restart the gateway around it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[3]


class FakeYagnaProcess:
    def __init__(self, log: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.golem", "--port", str(self.port), *options],
            cwd=ROOT,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the fake yagna exited:\n{log.read_text()}")
            try:
                httpx.get(f"{self.url}/_fake/summary", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def held(self, job_id: str) -> list[str]:
        found: list[str] = httpx.get(f"{self.url}/_fake/held", params={"job": job_id}).json()
        return found

    def summary(self) -> dict[str, object]:
        found: dict[str, object] = httpx.get(f"{self.url}/_fake/summary").json()
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()
