"""The client's `jobs.output()` and `cortex jobs output ID [-o DIR]` write what a job left in
/cortex/output/: one file as itself, several extracted from the gateway's tar.gz."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cortex_client import AsyncClient, Client
from cortex_client.errors import OutputNotFound
from tests.cli.conftest import Cortex
from tests.client.gateway import served
from tests.factories import Keys

SEVERAL = "cd /cortex/output && echo one > one.txt && mkdir sub && echo two > sub/two.txt"


@pytest.fixture
async def gateway_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    async with served(database_url, data_dir=tmp_path / "data") as url:
        yield url


@pytest.fixture
async def api_key(keys: Keys) -> str:
    return await keys.create(account="alpha")


async def finished_job(url: str, key: str, script: str) -> str:
    async with AsyncClient(url, key) as client:
        job = await client.jobs.submit(
            provider="local",
            image="busybox:latest",
            cpu=500,
            memory="64Mi",
            storage="1Gi",
            duration=60,
            command=["sh", "-c", script],
        )
        ended = await client.jobs.wait(job.id)
    assert ended.status == "completed", ended
    return job.id


class TestClientOutput:
    async def test_one_file_is_written_as_itself(
        self, gateway_url: str, api_key: str, tmp_path: Path
    ) -> None:
        job_id = await finished_job(gateway_url, api_key, "echo hi > /cortex/output/result.txt")
        async with AsyncClient(gateway_url, api_key) as client:
            written = await client.jobs.output(job_id, tmp_path / "out")
        assert written == [tmp_path / "out" / "result.txt"]
        assert written[0].read_text() == "hi\n"
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["result.txt"]

    async def test_several_files_are_extracted_by_the_blocking_client(
        self, gateway_url: str, api_key: str, tmp_path: Path
    ) -> None:
        job_id = await finished_job(gateway_url, api_key, SEVERAL)

        def download() -> list[Path]:
            with Client(gateway_url, api_key) as client:
                return client.jobs.output(job_id, tmp_path / "out")

        # In a thread: the gateway serves from this test's event loop.
        written = await asyncio.to_thread(download)
        assert sorted(written) == [tmp_path / "out" / "one.txt", tmp_path / "out/sub/two.txt"]
        assert (tmp_path / "out/sub/two.txt").read_text() == "two\n"

    async def test_no_output_raises_output_not_found_and_writes_nothing(
        self, gateway_url: str, api_key: str, tmp_path: Path
    ) -> None:
        job_id = await finished_job(gateway_url, api_key, "true")
        async with AsyncClient(gateway_url, api_key) as client:
            with pytest.raises(OutputNotFound):
                await client.jobs.output(job_id, tmp_path / "out")
        assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


class TestCliOutput:
    async def test_writes_the_file_into_the_directory_and_prints_its_path(
        self, gateway_url: str, api_key: str, tmp_path: Path
    ) -> None:
        job_id = await finished_job(gateway_url, api_key, "echo hi > /cortex/output/result.txt")
        cortex = Cortex(tmp_path / "config", CORTEX_URL=gateway_url, CORTEX_API_KEY=api_key)

        result = await cortex("jobs", "output", job_id, "-o", str(tmp_path / "dir"))

        assert result.code == 0, result
        assert (tmp_path / "dir" / "result.txt").read_text() == "hi\n"
        assert result.stdout.strip() == str(tmp_path / "dir" / "result.txt")

    async def test_extracts_several_files(
        self, gateway_url: str, api_key: str, tmp_path: Path
    ) -> None:
        job_id = await finished_job(gateway_url, api_key, SEVERAL)
        cortex = Cortex(tmp_path / "config", CORTEX_URL=gateway_url, CORTEX_API_KEY=api_key)

        result = await cortex("jobs", "output", job_id, "-o", str(tmp_path / "dir"))

        assert result.code == 0, result
        assert (tmp_path / "dir" / "one.txt").read_text() == "one\n"
        assert (tmp_path / "dir" / "sub" / "two.txt").read_text() == "two\n"

    async def test_a_job_without_output_exits_non_zero_with_the_code(
        self, gateway_url: str, api_key: str, tmp_path: Path
    ) -> None:
        job_id = await finished_job(gateway_url, api_key, "true")
        cortex = Cortex(tmp_path / "config", CORTEX_URL=gateway_url, CORTEX_API_KEY=api_key)

        result = await cortex("jobs", "output", job_id, "-o", str(tmp_path / "dir"))

        assert result.code != 0
        assert "OUTPUT_NOT_FOUND" in result.stderr or "no collected output" in result.stderr
        assert "Traceback" not in result.stderr
