"""`cortex` run as a user runs it: its own process, configured by the environment (or a saved
profile in a config directory of the test's own), against a real gateway."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.gateway import served
from tests.factories import Keys

COMMAND_SECONDS = 120


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


class Cortex:
    """Runs `cortex` (python -m cortex_client.cli) with an environment of its own."""

    def __init__(self, config_home: Path, **env: str):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")}
        self.env.update({"XDG_CONFIG_HOME": str(config_home), "COLUMNS": "200", **env})

    async def start(self, *args: str, stdin: bool = False) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cortex_client.cli",
            *args,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def __call__(self, *args: str, input: str | None = None) -> Result:
        process = await self.start(*args, stdin=input is not None)
        async with asyncio.timeout(COMMAND_SECONDS):
            out, err = await process.communicate(None if input is None else input.encode())
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def gateway_url(database_url: str) -> AsyncIterator[str]:
    async with served(database_url) as url:
        yield url


@pytest.fixture
async def api_key(keys: Keys) -> str:
    return await keys.create(account="alpha", scope=("admin",))


@pytest.fixture
def cortex(tmp_path: Path, gateway_url: str, api_key: str) -> Cortex:
    """`cortex` configured through CORTEX_URL and CORTEX_API_KEY."""
    return Cortex(tmp_path / "config", CORTEX_URL=gateway_url, CORTEX_API_KEY=api_key)
