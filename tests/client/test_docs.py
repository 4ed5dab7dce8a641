"""docs/client.md's example, run exactly as written against a real gateway."""

from __future__ import annotations

import asyncio
import os
import re
import sys

from tests.conftest import ROOT

MARKER = "<!-- example: tests/client/test_docs.py runs the next code block -->"


def example() -> str:
    text = (ROOT / "docs" / "client.md").read_text()
    after = text.split(MARKER, 1)[1]
    match = re.match(r"\s*```python\n(.*?)```", after, re.DOTALL)
    assert match, "the marked example is not followed by a python block"
    return match.group(1)


async def test_the_documented_example_runs_as_written(gateway_url: str, api_key: str) -> None:
    env = {**os.environ, "CORTEX_URL": gateway_url, "CORTEX_API_KEY": api_key}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        example(),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    job_id = lines[0].split()[1]
    assert lines[0] == f"submitted {job_id} pending"
    assert [line.split(" ", 1)[1] for line in lines[1:3]] == ["hello world", "bye"]
    assert lines[3:5] == ["completed exit code 0", "not cancelled: JOB_ALREADY_FINISHED"]
    assert lines[5].startswith(f"{job_id} completed ")
