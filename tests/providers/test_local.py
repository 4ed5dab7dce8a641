"""The local adapter on the real container runtime, where the engine cannot show it."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from providers.local import LocalProvider
from providers.local.log_frames import Frame, whole_lines
from providers.types import WorkloadSpec, WorkloadState
from tests.engine.conftest import containers_of


@pytest.fixture
async def local() -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(docker_host=os.environ["DOCKER_HOST"])
    try:
        yield provider
    finally:
        await provider.aclose()


def sleeper() -> WorkloadSpec:
    return WorkloadSpec(
        job_id=f"job_{secrets.token_hex(6)}",
        image="docker.io/library/busybox:latest",
        cpu_millicores=100,
        memory_bytes=32 * 2**20,
        storage_bytes=0,
        duration_seconds=60,
        command=("sleep", "60"),
    )


async def test_a_second_submit_of_one_job_adopts_its_container(local: LocalProvider) -> None:
    # The engine may die after creating a container and before storing its handle; the next
    # attempt must find that container, not fail on the name clash or start another.
    spec = sleeper()
    first = await local.submit(spec)
    try:
        second = await local.submit(spec)

        assert second["containerId"] == first["containerId"]
        assert [c["Id"] for c in await containers_of(spec.job_id)] == [first["containerId"]]
    finally:
        await local.release(first)
    assert await containers_of(spec.job_id) == []


async def test_health_reports_an_unreachable_runtime_with_its_address(tmp_path: object) -> None:
    provider = LocalProvider(docker_host="unix:///nonexistent/docker.sock")
    try:
        health = await provider.health()
    finally:
        await provider.aclose()

    assert not health.healthy
    assert "/nonexistent/docker.sock" in (health.reason or "")


async def test_a_container_whose_start_was_lost_is_started_by_the_next_look() -> None:
    # The engine records a job scheduled while its container starts; a process that dies
    # in between leaves a created container, and the next process's first look starts it.
    spec = dataclasses.replace(sleeper(), command=("sh", "-c", "echo started; exit 4"))
    dying = LocalProvider(docker_host=os.environ["DOCKER_HOST"])
    handle = await dying.submit(spec)
    await dying.aclose()  # before its start went out
    (container,) = await containers_of(spec.job_id)
    assert container["State"] == "created"

    successor = LocalProvider(docker_host=os.environ["DOCKER_HOST"])
    try:
        status = await successor.status(handle)
        for _ in range(100):
            if status.state is WorkloadState.EXITED:
                break
            await successor.watch(handle, 0.1)
            status = await successor.status(handle)
        logs = await successor.logs(handle, None)
    finally:
        await successor.release(handle)
        await successor.aclose()

    assert status.state is WorkloadState.EXITED and status.exit_code == 4
    assert [line.line for line in logs.lines] == ["started"]


def frames(*parts: tuple[str, str]) -> list[Frame]:
    moment = datetime(2026, 11, 25, tzinfo=UTC)
    return [Frame(stream, "2026-11-25T00:00:00Z", moment, text) for stream, text in parts]


def test_parts_of_a_line_join_across_the_other_stream() -> None:
    read = frames(("stdout", "ha"), ("stderr", "oops\n"), ("stdout", "lf\n"), ("stdout", "x\n"))

    joined = whole_lines(read, partial_lines_are_final=False, limit=100)
    lines, used = joined.lines, joined.used

    assert [(line.stream, line.line) for line in lines] == [
        ("stdout", "half"),
        ("stderr", "oops"),
        ("stdout", "x"),
    ]
    assert used == 4


def test_a_line_still_being_written_waits_and_so_does_everything_after_it() -> None:
    read = frames(("stdout", "done\n"), ("stdout", "writ"), ("stderr", "later\n"))

    joined = whole_lines(read, partial_lines_are_final=False, limit=100)
    lines, used = joined.lines, joined.used
    assert [line.line for line in lines] == ["done"]
    assert used == 1

    joined = whole_lines(read, partial_lines_are_final=True, limit=100)
    lines, used = joined.lines, joined.used
    assert [line.line for line in lines] == ["done", "writ", "later"]
    assert used == 3


def test_a_capped_read_ends_where_a_line_ends() -> None:
    read = frames(("stdout", "a\n"), ("stdout", "b"), ("stderr", "c\n"), ("stdout", "b\n"))

    joined = whole_lines(read, partial_lines_are_final=False, limit=1)
    lines, used = joined.lines, joined.used

    assert [line.line for line in lines] == ["a"]
    assert used == 1
