"""A local job whose image the runtime must pull says so while it waits ("pulling image ...:
1.3 MB of 5.3 MB"), in the job and on its event stream; then it starts as any job. The real
runtime pulls, from a registry served here (tests/providers/oci_registry.py) that sends the
image's layer over 4 s."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.application import create_app
from tests.e2e.test_gateway_process import Gateway
from tests.engine.conftest import busybox, engine_settings, submit, wait_for
from tests.factories import API, Keys
from tests.providers.oci_registry import Image, Registry, busybox_layers, serve
from tests.providers.test_local_sandbox import runtime
from tests.servers import uvicorn_server
from tests.streams.sse_client import events

DOCKER = "http://docker/v1.41"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    async with runtime() as client:
        rootfs = await busybox_layers(client)
    image = Image.busybox(rootfs, f"cortex-pull-{secrets.token_hex(4)}", "1")
    async with serve(Registry(images=[image], seconds_per_layer=4.0), tmp_path) as running:
        try:
            yield running
        finally:
            async with runtime() as client:
                await client.delete(
                    f"{DOCKER}/images/{running.reference(image)}", params={"force": "true"}
                )


@pytest.fixture
async def gateway(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    """A real gateway (engine and streams) announcing progress at most every 0.5 s."""
    settings = engine_settings(database_url, progress_event_interval=0.5)
    async with uvicorn_server(create_app(settings)) as url:
        headers = {"Authorization": f"Bearer {await keys.create()}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
            yield client


async def followed(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    """The job's events as its SSE stream delivers them, until the stream ends."""
    received = []
    async with client.stream("GET", f"{API}/jobs/{job_id}/events?follow=true") as response:
        assert response.status_code == 200
        async for event in events(response):
            if event.event == "end":
                return received
            received.append(event.json())
    raise AssertionError("the stream closed without its end event")


async def shown_messages(client: httpx.AsyncClient, job_id: str) -> list[str | None]:
    """Each statusMessage GET /jobs/{id} showed, in order, until the job ended."""
    seen: list[str | None] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
        if not seen or seen[-1] != job["statusMessage"]:
            seen.append(job["statusMessage"])
        if job["status"] in ("completed", "failed", "cancelled"):
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job_id} never ended: {seen}")


async def test_a_job_shows_its_image_pull_then_runs(
    gateway: httpx.AsyncClient, registry: Registry
) -> None:
    reference = registry.reference(registry.images[0])
    job_id = await submit(gateway, busybox("echo ran", image=reference))

    streamed, shown = await asyncio.gather(
        followed(gateway, job_id), shown_messages(gateway, job_id)
    )

    pulling = [m for m in shown if m and m.startswith(f"pulling image {reference}")]
    assert any(" MB of " in m for m in pulling), shown
    assert shown[-1] is None, "a job that ran and said nothing has no message"
    announced = [e["data"]["statusMessage"] for e in streamed if e["type"] == "progress"]
    assert announced and announced[0].startswith(f"pulling image {reference}"), streamed
    types = [e["type"] for e in streamed]
    assert types[:2] == ["created", "scheduled"]
    assert types.index("progress") < types.index("started") < types.index("completed")
    job = await wait_for(gateway, job_id)
    assert job["status"] == "completed"
    assert job["statusMessage"] is None


async def test_a_job_whose_pull_fails_midway_fails_with_image_pull(
    gateway: httpx.AsyncClient, registry: Registry
) -> None:
    registry.cut_layer = True
    reference = registry.reference(registry.images[0])
    job_id = await submit(gateway, busybox("true", image=reference))

    shown = await shown_messages(gateway, job_id)
    job = await wait_for(gateway, job_id)

    assert any(m and m.startswith(f"pulling image {reference}") for m in shown), shown
    assert job["status"] == "failed"
    assert job["results"]["reason"] == "image_pull"
    assert job["results"]["message"] == f"image could not be pulled: {reference}"
    assert job["startedAt"] is None
    assert [e["type"] for e in job["events"]][-1] == "failed"


async def test_a_gateway_killed_mid_pull_leaves_the_job_to_the_next(
    database_url: str, tmp_path: Path, keys: Keys, registry: Registry
) -> None:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        CORTEX_DATA_DIR=str(tmp_path / "data"),
        CORTEX_ENGINE_LEASE_SECONDS="2",
        CORTEX_ENGINE_POLL_INTERVAL="0.2",
    )
    headers = {"Authorization": f"Bearer {await keys.create()}"}
    reference = registry.reference(registry.images[0])
    registry.seconds_per_layer = 8.0
    first = Gateway(env, tmp_path / "first.log")
    try:
        # In a thread: the registry serves from this test's event loop meanwhile.
        await asyncio.to_thread(first.wait_until_serving)
        async with httpx.AsyncClient(base_url=first.url.removesuffix(API), headers=headers) as c:
            job_id = await submit(c, busybox("echo made it", image=reference))
            while not str(
                (await c.get(f"{API}/jobs/{job_id}")).json()["data"]["statusMessage"]
            ).startswith("pulling image"):
                await asyncio.sleep(0.1)
        first.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.process.wait)
    finally:
        first.kill()

    registry.seconds_per_layer = 2.0
    second = Gateway(env, tmp_path / "second.log")
    try:
        await asyncio.to_thread(second.wait_until_serving)
        async with httpx.AsyncClient(base_url=second.url.removesuffix(API), headers=headers) as c:
            job = await wait_for(c, job_id, timeout=90)
            logs = (await c.get(f"{API}/jobs/{job_id}/logs")).json()["data"]["logs"]
    finally:
        second.kill()

    assert job["status"] == "completed", job["results"]
    assert [entry["line"] for entry in logs] == ["made it"]
