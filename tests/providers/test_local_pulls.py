"""A job whose image the runtime lacks waits while the real runtime pulls it, from a registry
served here (tests/providers/oci_registry.py): the job says how far the pull is, jobs on the
same image share one pull, a pull that fails fails the job, and a restart mid-pull loses
nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from providers.local import LocalProvider
from providers.types import FailureReason, Handle, VolumeSpec, WorkloadState, WorkloadStatus
from tests.providers.oci_registry import Image, Registry, busybox_layers, serve
from tests.providers.test_local_sandbox import API, runtime, shell


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    """A registry with one image (new to the runtime) whose layer takes 4 s to send."""
    async with runtime() as client:
        rootfs = await busybox_layers(client)
    image = Image.busybox(rootfs, f"cortex-pull-{secrets.token_hex(4)}", "1")
    async with serve(Registry(images=[image], seconds_per_layer=4.0), tmp_path) as running:
        try:
            yield running
        finally:
            async with runtime() as client:
                await client.delete(
                    f"{API}/images/{running.reference(image)}", params={"force": "true"}
                )


@pytest.fixture
async def local() -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(docker_host=os.environ["DOCKER_HOST"])
    yield provider
    await provider.aclose()


async def follow_until_exited(
    provider: LocalProvider, handle: Handle
) -> tuple[list[WorkloadStatus], Handle]:
    """Every status seen until the workload exited, and its last handle."""
    seen: list[WorkloadStatus] = []
    deadline = time.monotonic() + 60
    while True:
        status = await provider.status(handle)
        seen.append(status)
        handle = status.handle or handle
        if status.state in (WorkloadState.EXITED, WorkloadState.FAILED):
            return seen, handle
        assert time.monotonic() < deadline, [s.waiting for s in seen]
        await provider.watch(handle, 0.3)


def messages(seen: list[WorkloadStatus]) -> list[str | None]:
    """The waiting messages in order, each once."""
    found: list[str | None] = []
    for status in seen:
        if not found or found[-1] != status.waiting:
            found.append(status.waiting)
    return found


async def test_a_job_waits_for_its_image_saying_how_far_the_pull_is(
    registry: Registry, local: LocalProvider
) -> None:
    reference = registry.reference(registry.images[0])
    spec = shell("echo pulled and ran", image=reference)

    handle = await local.submit(spec)
    seen, handle = await follow_until_exited(local, handle)

    assert "containerId" in handle, "the container was created once the image was there"
    assert seen[-1].state is WorkloadState.EXITED and seen[-1].exit_code == 0
    said = messages(seen)
    pulling = [m for m in said if m and m.startswith("pulling image")]
    assert pulling, said
    assert all(s.state is WorkloadState.PENDING for s in seen if s.waiting in pulling)
    # The layer's bytes arrive over 4 s: the message counts them (refreshed every 2 s).
    assert any(
        m.startswith(f"pulling image {reference}: ") and m.endswith(" MB") and " MB of " in m
        for m in pulling
    ), pulling
    assert said.index(pulling[-1]) < said.index("starting container"), said
    batch = await local.logs(handle, None)
    assert [line.line for line in batch.lines] == ["pulled and ran"]
    await local.release(handle)


async def test_jobs_on_the_same_missing_image_share_one_pull(
    registry: Registry, local: LocalProvider
) -> None:
    reference = registry.reference(registry.images[0])
    specs = [shell(f"echo job {n}", image=reference) for n in range(3)]

    handles = await asyncio.gather(*(local.submit(spec) for spec in specs))
    outcomes = await asyncio.gather(*(follow_until_exited(local, h) for h in handles))

    assert [seen[-1].exit_code for seen, _ in outcomes] == [0, 0, 0]
    assert registry.layer_requests == 1, "the layer was fetched once, for all three jobs"
    for _, handle in outcomes:
        await local.release(handle)


async def test_a_pull_that_fails_midway_fails_the_job_with_image_pull(
    registry: Registry, local: LocalProvider, caplog: pytest.LogCaptureFixture
) -> None:
    registry.cut_layer = True
    reference = registry.reference(registry.images[0])
    spec = shell("true", image=reference)

    handle = await local.submit(spec)
    with caplog.at_level(logging.WARNING):
        seen, handle = await follow_until_exited(local, handle)

    assert any(s.waiting and s.waiting.startswith("pulling image") for s in seen)
    failed = seen[-1]
    assert failed.state is WorkloadState.FAILED
    assert failed.reason is FailureReason.IMAGE_PULL
    # As a pull failing at submission says it: the image, not the runtime's words.
    assert failed.message == f"image could not be pulled: {reference}"
    assert any(spec.job_id in r.getMessage() for r in caplog.records)
    await local.release(handle)
    async with runtime() as client:
        leftovers = await client.get(f"{API}/containers/cortex-{spec.job_id}/json")
        assert leftovers.status_code == 404


async def test_a_restart_mid_pull_pulls_again_and_runs_the_job(registry: Registry) -> None:
    reference = registry.reference(registry.images[0])
    spec = shell("echo after the restart", image=reference)
    before = LocalProvider(docker_host=os.environ["DOCKER_HOST"])
    handle = await before.submit(spec)
    assert (await before.status(handle)).state is WorkloadState.PENDING
    await before.aclose()  # the gateway stops; the job keeps its (pulling) handle

    after = LocalProvider(docker_host=os.environ["DOCKER_HOST"])
    try:
        seen, handle = await follow_until_exited(after, handle)
        assert seen[-1].exit_code == 0, seen[-1]
        batch = await after.logs(handle, None)
        assert [line.line for line in batch.lines] == ["after the restart"]
        await after.release(handle)
    finally:
        await after.aclose()


async def test_a_job_cancelled_while_its_image_is_pulled_leaves_nothing(
    registry: Registry, local: LocalProvider
) -> None:
    reference = registry.reference(registry.images[0])
    spec = shell("true", image=reference, volumes=(VolumeSpec("data", "/data"),))
    handle = await local.submit(spec)
    assert (await local.status(handle)).state is WorkloadState.PENDING

    await local.cancel(handle)
    await local.release(handle)

    async with runtime() as client:
        container = await client.get(f"{API}/containers/cortex-{spec.job_id}/json")
        volume = await client.get(f"{API}/volumes/cortex-{spec.job_id}-data")
    assert container.status_code == 404
    assert volume.status_code == 404
