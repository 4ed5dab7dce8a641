"""The Render adapter against the fake Dispersed API on a real loopback port: signatures,
the BATCH job it asks for, states, logs, endpoints, cancel, and what it refuses."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from providers import (
    FailureReason,
    GpuSpec,
    HandleNotFound,
    PortSpec,
    Rejected,
    VolumeSpec,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)
from providers.render import RenderProvider, signing
from providers.render.adapter import MAX_RUN_BODY_BYTES, split_image
from tests.fakes.render import FakeRender, Node
from tests.servers import uvicorn_server

PUBLIC, SECRET = "pk_test", "sk_test"


@pytest.fixture
def fake() -> FakeRender:
    return FakeRender(keys={PUBLIC: SECRET}, step=0.05)


@pytest.fixture
async def fake_url(fake: FakeRender) -> AsyncIterator[str]:
    async with uvicorn_server(fake.app()) as url:
        yield url


@pytest.fixture
async def render(fake_url: str) -> AsyncIterator[RenderProvider]:
    adapter = RenderProvider(
        api_url=fake_url, public_key=PUBLIC, secret_key=SECRET, poll_interval=0.01
    )
    yield adapter
    await adapter.aclose()


def spec(**overrides: Any) -> WorkloadSpec:
    values: dict[str, Any] = {
        "job_id": f"job_{int(time.time() * 1e6):016x}",
        "image": "ghcr.io/acme/worker:1.2",
        "cpu_millicores": 1500,
        "memory_bytes": 3 * 2**30,
        "storage_bytes": 10 * 2**30,
        "duration_seconds": 120,
        "env": {"RENDER_FAKE_OUTPUT": "hello\nworld", "RENDER_FAKE_SECONDS": "0.3"},
    }
    values.update(overrides)
    return WorkloadSpec(**values)


async def until(
    render: RenderProvider, handle: dict[str, Any], states: set[WorkloadState]
) -> WorkloadStatus:
    deadline = time.monotonic() + 10
    while True:
        status = await render.status(handle)
        handle.update(status.handle or {})
        if status.state in states:
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.02)


def signed(method: str, path: str, query: str = "", body: bytes = b"", **fields: str) -> dict:
    headers = signing.signed_headers(PUBLIC, SECRET, method, path, query, body)
    headers.update(fields)
    return headers


class TestSignatures:
    """The fake refuses what the real API refuses, so a passing adapter signs correctly."""

    async def test_a_correctly_signed_request_is_answered(self, fake_url: str) -> None:
        async with httpx.AsyncClient(base_url=fake_url) as client:
            response = await client.get("/v1/jobs", headers=signed("GET", "/v1/jobs"))
        assert response.status_code == 200
        assert response.json() == {"data": [], "page": 1, "limit": 20, "total": 0}

    async def test_a_body_other_than_the_signed_one_answers_401(self, fake_url: str) -> None:
        headers = signed("POST", "/v1/jobs", body=b'{"task":"BATCH"}')
        async with httpx.AsyncClient(base_url=fake_url) as client:
            response = await client.post(
                "/v1/jobs", content=b'{"task":"PERSISTENT"}', headers=headers
            )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "INVALID_SIGNATURE"

    async def test_a_wrong_secret_answers_401(self, fake_url: str) -> None:
        headers = signing.signed_headers(PUBLIC, "sk_wrong", "GET", "/v1/jobs", "", b"")
        async with httpx.AsyncClient(base_url=fake_url) as client:
            response = await client.get("/v1/jobs", headers=headers)
        assert response.status_code == 401

    async def test_a_reused_nonce_answers_401(self, fake_url: str) -> None:
        headers = signed("GET", "/v1/jobs")
        async with httpx.AsyncClient(base_url=fake_url) as client:
            first = await client.get("/v1/jobs", headers=headers)
            again = await client.get("/v1/jobs", headers=headers)
        assert first.status_code == 200
        assert again.status_code == 401
        assert again.json()["error"]["code"] == "NONCE_REUSED"

    async def test_a_clock_more_than_5_minutes_off_answers_401(self, fake_url: str) -> None:
        stale = int(time.time() * 1000) - 5 * 60 * 1000 - 1000
        headers = signing.signed_headers(PUBLIC, SECRET, "GET", "/v1/jobs", "", b"", now_ms=stale)
        async with httpx.AsyncClient(base_url=fake_url) as client:
            response = await client.get("/v1/jobs", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "INVALID_TIMESTAMP"

    def test_the_string_to_sign_is_the_documented_one(self) -> None:
        body = signing.canonical_json({"b": 1, "a": {"z": "é", "y": [2, 1]}})
        assert body == '{"a":{"y":[2,1],"z":"é"},"b":1}'.encode()
        query = signing.canonical_query({"limit": "1", "filter[job_uuid]": "u 1"})
        assert query == "filter%5Bjob_uuid%5D=u%201&limit=1"
        message = signing.string_to_sign(
            "pk", "1700000000000", "ab" * 16, "get", "/v1/x", query, body
        )
        assert message == (
            f"pk|1700000000000|{'ab' * 16}|GET|/v1/x|{query}|{hashlib.sha256(body).hexdigest()}"
        )
        assert (
            signing.signature("sk", message)
            == hmac.new(b"sk", message.encode(), hashlib.sha256).hexdigest()
        )
        headers = signing.signed_headers("pk", "sk", "GET", "/v1/x", "", b"")
        assert len(headers["X-Nonce"]) == 32
        assert (
            headers["X-Nonce"] != signing.signed_headers("pk", "sk", "GET", "/", "", b"")["X-Nonce"]
        )

    async def test_every_adapter_request_was_signed_and_accepted(
        self, render: RenderProvider, fake: FakeRender
    ) -> None:
        handle = await render.submit(spec())
        await until(render, handle, {WorkloadState.EXITED})
        await render.logs(handle, None)
        assert fake.seen and all(status < 400 for _, _, status in fake.seen)
        assert len(fake.nonces) == len(fake.seen)


class TestSubmit:
    async def test_a_job_becomes_a_batch_docker_job(
        self, render: RenderProvider, fake: FakeRender
    ) -> None:
        workload = spec(
            ports=(PortSpec(8080, expose=True), PortSpec(9000)),
            gpu=GpuSpec(count=2, model="NVIDIA RTX 4090", min_vram_bytes=20 * 2**30),
        )
        handle = await render.submit(workload)
        body = fake.jobs[handle["job"]].body
        assert body["task"] == "BATCH"
        assert body["title"] == f"cortex-{workload.job_id}"
        assert body["max_timeout_run_ms"] == 120_000
        assert (body["cpu_count"], body["min_ram_gb"], body["min_storage_gb"]) == (2, 3, 10)
        assert (body["gpu_count"], body["gpu_name"], body["min_vram_gb"]) == (
            2,
            "NVIDIA RTX 4090",
            20,
        )
        assert body["parameters"] == {
            "type": "docker",
            "parameters": {
                "image": "ghcr.io/acme/worker",
                "tag": "1.2",
                "env": dict(workload.env),
                "ports": [8080],
            },
        }

    async def test_submitting_again_adopts_the_first_job(
        self, render: RenderProvider, fake: FakeRender
    ) -> None:
        workload = spec()
        first = await render.submit(workload)
        again = await render.submit(workload)
        assert again == first
        assert len(fake.jobs) == 1

    def test_images_split_into_name_and_tag(self) -> None:
        assert split_image("nginx:alpine") == ("nginx", "alpine")
        assert split_image("nginx") == ("nginx", "latest")
        assert split_image("registry:5000/team/app") == ("registry:5000/team/app", "latest")
        assert split_image("registry:5000/team/app:2") == ("registry:5000/team/app", "2")


class TestRefusals:
    def test_what_the_network_cannot_run_is_refused_naming_the_field(self) -> None:
        render = RenderProvider()
        refusals = render.check(
            spec(
                command=("sh",),
                volumes=(VolumeSpec("data", "/data"),),
                duration_seconds=59,
                gpu=GpuSpec(model="NVIDIA GTX 480"),
            )
        )
        assert {r.field for r in refusals} == {"command", "volumes", "duration", "gpu.model"}
        assert render.check(spec(args=("x",)))[0].field == "args"
        assert render.check(spec(image="repo@sha256:" + "a" * 64))[0].field == "image"
        assert render.check(spec()) == []

    async def test_submit_refuses_too(self, render: RenderProvider, fake: FakeRender) -> None:
        with pytest.raises(Rejected, match="duration"):
            await render.submit(spec(duration_seconds=30))
        assert fake.jobs == {}

    async def test_a_spec_the_api_refuses_is_rejected(self, render: RenderProvider) -> None:
        with pytest.raises(Rejected, match=r"parameters\.parameters\.env"):
            await render.submit(spec(env={"BAD": 1}))  # type: ignore[dict-item]


class TestQuote:
    async def test_the_price_is_gpus_times_the_models_rate(self) -> None:
        render = RenderProvider(gpu_rates={"NVIDIA RTX 4090": 0.35, "NVIDIA RTX 5090": 0.69})
        two = await render.quote(spec(gpu=GpuSpec(count=2, model="NVIDIA RTX 5090")))
        assert two.usd_per_hour == pytest.approx(1.38)
        any_gpu = await render.quote(spec())
        assert any_gpu.usd_per_hour == pytest.approx(0.35)
        big = await render.quote(spec(gpu=GpuSpec(min_vram_bytes=32 * 2**30)))
        assert big.usd_per_hour == pytest.approx(0.69)
        with pytest.raises(Rejected):
            await render.quote(spec(gpu=GpuSpec(min_vram_bytes=48 * 2**30)))


class TestHealth:
    async def test_without_keys_it_is_not_configured(self) -> None:
        health = await RenderProvider().health()
        assert not health.healthy and not health.configured
        assert "CORTEX_RENDER_SECRET_KEY" in (health.reason or "")

    async def test_refused_keys_make_it_unhealthy(self, fake_url: str) -> None:
        render = RenderProvider(api_url=fake_url, public_key=PUBLIC, secret_key="sk_wrong")
        try:
            health = await render.health()
        finally:
            await render.aclose()
        assert not health.healthy and "refused the API key" in (health.reason or "")

    async def test_reachable_with_good_keys(self, render: RenderProvider) -> None:
        assert (await render.health()).healthy


class TestLifecycle:
    async def test_a_job_runs_and_its_logs_come_from_the_run(self, render: RenderProvider) -> None:
        handle = await render.submit(
            spec(
                ports=(PortSpec(8080, expose=True),),
                env={"RENDER_FAKE_OUTPUT": "one\ntwo\nthree", "RENDER_FAKE_SECONDS": "0.6"},
            )
        )
        running = await until(render, handle, {WorkloadState.RUNNING})
        assert running.started_at is not None
        assert [(e.port, e.url) for e in running.endpoints] == [
            (8080, "http://node.fake-render.test:30000")
        ]
        assert any("assigned" in note for note in (running.notes or ())) or "run" in handle
        lines: list[str] = []
        cursor = None
        deadline = time.monotonic() + 10
        while True:
            batch = await render.logs(handle, cursor)
            lines += [line.line for line in batch.lines]
            cursor = batch.cursor
            status = await render.status(handle)
            if status.state is WorkloadState.EXITED:
                batch = await render.logs(handle, cursor)
                lines += [line.line for line in batch.lines]
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert status.exit_code == 0
        assert lines == ["one", "two", "three"]
        again = await render.logs(handle, batch.cursor)
        assert again.lines == () and again.cursor == batch.cursor

    async def test_a_log_over_the_read_cap_gives_its_head_then_one_marked_line(
        self, render: RenderProvider
    ) -> None:
        output = {"RENDER_FAKE_OUTPUT": "x" * 999, "RENDER_FAKE_REPEAT": "20000"}  # 20 MB
        handle = await render.submit(spec(env={**output, "RENDER_FAKE_SECONDS": "0.01"}))
        await until(render, handle, {WorkloadState.EXITED})
        batch = await render.logs(handle, None)
        *head, last = [line.line for line in batch.lines]
        assert "over 16777216 bytes" in last and "could not" not in last
        assert head and set(head) == {"x" * 999}
        assert len(head) * 1000 <= MAX_RUN_BODY_BYTES
        again = await render.logs(handle, batch.cursor)
        assert again.lines == () and again.cursor == batch.cursor

    async def test_a_failing_container_fails(self, render: RenderProvider) -> None:
        handle = await render.submit(
            spec(env={"RENDER_FAKE_FAIL": "1", "RENDER_FAKE_SECONDS": "0.1"})
        )
        status = await until(render, handle, {WorkloadState.FAILED})
        assert status.reason is FailureReason.EXIT_CODE

    async def test_no_node_in_time_is_not_assigned(self, fake_url: str, fake: FakeRender) -> None:
        fake.nodes = [Node("NVIDIA RTX 3090")]
        render = RenderProvider(
            api_url=fake_url,
            public_key=PUBLIC,
            secret_key=SECRET,
            poll_interval=0.01,
            assign_timeout=1,
        )
        try:
            handle = await render.submit(spec(gpu=GpuSpec(model="NVIDIA RTX 4090")))
            status = await until(render, handle, {WorkloadState.FAILED})
            await render.release(handle)
        finally:
            await render.aclose()
        assert status.reason is FailureReason.NOT_ASSIGNED
        assert "No Render node took the job within 1 s" in (status.message or "")

    async def test_cancel_returns_once_render_confirms(
        self, render: RenderProvider, fake: FakeRender
    ) -> None:
        handle = await render.submit(spec(env={"RENDER_FAKE_SECONDS": "30"}))
        await until(render, handle, {WorkloadState.RUNNING})
        await render.cancel(handle)
        assert fake.jobs[handle["job"]].status == "CANCELLED"
        assert fake.jobs[handle["job"]].cancel_reason == "cancelled through Cortex Gateway"
        await render.cancel(handle)  # idempotent
        await render.release(handle)

    async def test_releasing_a_waiting_job_cancels_it(
        self, render: RenderProvider, fake: FakeRender
    ) -> None:
        fake.nodes = []
        handle = await render.submit(spec())
        await render.release(handle)
        status = await until(render, handle, {WorkloadState.FAILED})
        assert "cancelled" in (status.message or "")
        await asyncio.sleep(0.1)
        await render.status(handle)
        assert fake.jobs[handle["job"]].status == "CANCELLED"

    async def test_an_unknown_job_is_lost(self, render: RenderProvider) -> None:
        with pytest.raises(HandleNotFound):
            await render.status({"job": "00000000-0000-0000-0000-000000000000"})


def test_options_come_from_the_settings() -> None:
    from app.settings import Settings

    options = Settings(
        render_public_key="pk_x", render_secret_key="sk_x", render_gpu_rates={"A": 1.0}
    ).provider_options("render")
    render = RenderProvider(**options)  # type: ignore[arg-type]
    assert render.api.public_key == "pk_x" and render.gpu_rates == {"A": 1.0}
    assert replace(spec(), duration_seconds=60).duration_seconds == 60


async def test_render_is_asked_about_a_running_job_once_per_poll_interval(
    fake_url: str, fake: FakeRender
) -> None:
    render = RenderProvider(
        api_url=fake_url, public_key=PUBLIC, secret_key=SECRET, poll_interval=0.01
    )
    try:
        handle = await render.submit(spec(env={"RENDER_FAKE_SECONDS": "30"}))
        await until(render, handle, {WorkloadState.RUNNING})
        await render.logs(handle, None)
        render.poll_interval = 60
        before = len(fake.seen)
        for _ in range(5):
            assert (await render.status(handle)).state is WorkloadState.RUNNING
            assert (await render.logs(handle, "0")).lines == ()
        assert len(fake.seen) == before
    finally:
        await render.aclose()
