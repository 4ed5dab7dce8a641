"""On every network: a workload's `::cortex` lines set its job's progress, the workload finds
its job spec (CORTEX_JOB_SPEC everywhere, the file /cortex/spec/job.json on local), and the
job's statusMessage says what the network does while it waits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import busybox, engine_settings, log_lines, submit, wait_for
from tests.factories import API, Keys
from tests.fakes.akash import FakeAkash
from tests.fakes.akash import running_fake as running_akash
from tests.fakes.golem import APP_KEY, RunningFake
from tests.fakes.golem import running_fake as running_golem
from tests.fakes.render import FakeRender, Node
from tests.providers.akash.test_jobs import akash_job
from tests.providers.conformance.harness_akash import API_KEY
from tests.providers.conformance.harness_golem import fast_timing
from tests.providers.golem.test_jobs import golem_job
from tests.providers.test_render_jobs import render_adapter, render_job
from tests.servers import lifespan_app, uvicorn_server

REPORT = '::cortex {"progress": 50, "message": "half way"}'


class Networks:
    def __init__(self, akash: FakeAkash, golem: RunningFake, render: FakeRender) -> None:
        self.akash, self.golem, self.render = akash, golem, render


@pytest.fixture
async def networks() -> AsyncIterator[tuple[Networks, str]]:
    """The three fake networks; the Render fake's URL beside them."""
    render = FakeRender(keys={"pk_test": "sk_test"}, step=0.05)
    async with (
        running_akash(api_key=API_KEY, bid_delay=0.3, start_delay=0.2) as akash,
        running_golem(fast_timing()) as golem,
        uvicorn_server(render.app()) as render_url,
    ):
        yield Networks(akash, golem, render), render_url


@pytest.fixture
async def gateway(
    database_url: str, keys: Keys, networks: tuple[Networks, str]
) -> AsyncIterator[httpx.AsyncClient]:
    fakes, render_url = networks
    settings = engine_settings(
        database_url,
        akash_api_key=API_KEY,
        akash_api_url=fakes.akash.console_url,
        akash_poll_interval=0.2,
        akash_bid_timeout=10.0,
        golem_api_url=fakes.golem.url,
        golem_registry_url=fakes.golem.url,
        golem_app_key=APP_KEY,
        golem_poll_interval=0.05,
        progress_event_interval=0.2,
    )
    app = create_app(settings, extra_providers=[render_adapter(render_url)])
    async with lifespan_app(app) as running:
        transport = httpx.ASGITransport(app=running, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


def job_printing(network: str, script: str, lines: list[str]) -> dict[str, Any]:
    """A job on `network` running `script` (Render's fake prints `lines` instead)."""
    if network == "akash":
        return akash_job(script)
    if network == "golem":
        return golem_job(script)
    if network == "render":
        return render_job(
            env={"RENDER_FAKE_OUTPUT": "\n".join(lines), "RENDER_FAKE_SECONDS": "0.3"}
        )
    return busybox(script)


def spec_sent(fakes: Networks, network: str, job_id: str) -> dict[str, Any]:
    """The CORTEX_JOB_SPEC the network was asked to give the workload, from the fake."""
    if network == "render":
        [job] = [job for job in fakes.render.jobs.values() if job_id in job.body["title"]]
        env = job.env
    elif network == "akash":
        [deployment] = [d for d in fakes.akash.network.deployments.values() if d.job_id == job_id]
        assert deployment.workload is not None
        env = deployment.workload.env
    else:
        raise AssertionError(network)
    sent: dict[str, Any] = json.loads(env["CORTEX_JOB_SPEC"])
    return sent


@pytest.mark.parametrize("network", ["local", "akash", "golem", "render"])
async def test_progress_lines_set_the_jobs_progress(
    network: str, gateway: httpx.AsyncClient
) -> None:
    job_id = await submit(
        gateway, job_printing(network, f"echo '{REPORT}'; echo after", [REPORT, "after"])
    )

    job = await wait_for(gateway, job_id, timeout=60)

    assert job["status"] == "completed", job
    assert (job["progress"], job["statusMessage"]) == (50, "half way")
    assert REPORT in await log_lines(gateway, job_id)
    events = (await gateway.get(f"{API}/jobs/{job_id}/events")).json()["data"]["events"]
    assert [e["data"]["progress"] for e in events if e["type"] == "progress"][-1] == 50


@pytest.mark.parametrize("network", ["local", "akash", "golem"])
async def test_the_workload_reads_its_spec_from_the_environment(
    network: str, gateway: httpx.AsyncClient
) -> None:
    job_id = await submit(gateway, job_printing(network, 'echo "$CORTEX_JOB_SPEC"', []))

    job = await wait_for(gateway, job_id, timeout=60)

    assert job["status"] == "completed", job
    [printed] = [line for line in await log_lines(gateway, job_id) if line.startswith("{")]
    spec = json.loads(printed)
    assert (spec["id"], spec["provider"], spec["image"]) == (job_id, network, job["image"])
    assert spec["config"]["command"] == job["config"]["command"]


@pytest.mark.parametrize("network", ["akash", "render"])
async def test_what_each_network_is_sent_carries_the_spec(
    network: str, gateway: httpx.AsyncClient, networks: tuple[Networks, str]
) -> None:
    job_id = await submit(gateway, job_printing(network, "true", ["ok"]))

    job = await wait_for(gateway, job_id, timeout=60)

    sent = spec_sent(networks[0], network, job_id)
    assert (sent["id"], sent["provider"], sent["duration"]) == (job_id, network, job["duration"])


async def test_local_places_the_spec_file_too(gateway: httpx.AsyncClient) -> None:
    job_id = await submit(gateway, busybox("cat /cortex/spec/job.json"))

    await wait_for(gateway, job_id)

    assert json.loads("\n".join(await log_lines(gateway, job_id)))["id"] == job_id


async def messages_until_running(client: httpx.AsyncClient, job_id: str) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = (await client.get(f"{API}/jobs/{job_id}")).json()["data"]
        if job["statusMessage"] and job["statusMessage"] not in seen:
            seen.append(job["statusMessage"])
        if job["status"] not in ("pending", "scheduled"):
            return seen
        await asyncio.sleep(0.02)
    raise AssertionError(f"{job_id} never ran: {seen}")


async def test_golem_says_it_negotiates_then_deploys(gateway: httpx.AsyncClient) -> None:
    job_id = await submit(gateway, golem_job("sleep 1"))

    seen = await messages_until_running(gateway, job_id)

    assert any(m.startswith(("looking for offers", "negotiating with")) for m in seen), seen
    assert any(m.startswith("deploying the image on") for m in seen), seen
    await wait_for(gateway, job_id, timeout=60)


async def test_render_says_it_waits_for_a_node_until_one_is_free(
    gateway: httpx.AsyncClient, networks: tuple[Networks, str]
) -> None:
    render = networks[0].render
    gpu = {"count": 1, "model": "NVIDIA RTX 5090"}  # no such node yet
    job_id = await submit(gateway, render_job(gpu=gpu, env={"RENDER_FAKE_SECONDS": "0.5"}))
    deadline = time.monotonic() + 30
    while (await gateway.get(f"{API}/jobs/{job_id}")).json()["data"]["statusMessage"] is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    waiting = (await gateway.get(f"{API}/jobs/{job_id}")).json()["data"]
    render.nodes.append(Node("NVIDIA RTX 5090", gpus=1, vram_gb=32))
    seen = await messages_until_running(gateway, job_id)

    assert (waiting["status"], waiting["statusMessage"]) == ("scheduled", "waiting for a node")
    assert seen[0] == "waiting for a node", seen
    job = await wait_for(gateway, job_id, timeout=60)
    assert (job["status"], job["statusMessage"]) == ("completed", None)
