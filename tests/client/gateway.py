"""Gateways for the client and CLI tests: in this process on a uvicorn port, or as a
`cortex-gateway serve` process that can be stopped and started again on the same port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from app.application import create_app
from app.settings import Settings
from tests.factories import API
from tests.servers import free_port, uvicorn_server

STARTUP_SECONDS = 60
FAST_ENGINE = {
    "CORTEX_ENGINE_POLL_INTERVAL": "0.2",
    "CORTEX_ENGINE_LEASE_SECONDS": "3",
    "CORTEX_METRICS_INTERVAL": "0.5",
}


def engine_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "engine_enabled": True,
        "engine_poll_interval": 0.2,
        "engine_lease_seconds": 3.0,
        "metrics_interval": 0.5,
        "webhook_allowed_networks": "127.0.0.0/8",
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def served(database_url: str, **overrides: Any) -> AsyncIterator[str]:
    """A gateway with its engine, on a loopback port of this process; yields its URL."""
    async with uvicorn_server(create_app(engine_settings(database_url, **overrides))) as url:
        yield url


class GatewayProcess:
    """`cortex-gateway serve` on a fixed port, its output appended to a file."""

    def __init__(self, database_url: str, log: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {**os.environ, "DATABASE_URL": database_url, **FAST_ENGINE, **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                # One process, as the tests reason about one (serve's default is one per core).
                [sys.executable, "-m", "app", "serve", "--port", str(self.port), "--workers", "1"],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}{API}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"gateway did not start:\n{self.log.read_text()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
