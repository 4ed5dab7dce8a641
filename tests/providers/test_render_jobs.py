"""Render jobs through the gateway: the Jobs API, the engine and the fake Dispersed API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.application import create_app
from providers.render import RenderProvider
from tests.engine.conftest import engine_settings, log_lines, submit, wait_for
from tests.factories import API, Keys, job_spec
from tests.fakes.render import FakeRender
from tests.servers import lifespan_app, uvicorn_server


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeRender, str]]:
    fake = FakeRender(keys={"pk_test": "sk_test"}, step=0.05)
    async with uvicorn_server(fake.app()) as url:
        yield fake, url


def render_adapter(url: str) -> RenderProvider:
    return RenderProvider(
        api_url=url, public_key="pk_test", secret_key="sk_test", poll_interval=0.05
    )


async def client_of(app: Any, keys: Keys) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://gateway")
    client.headers["Authorization"] = f"Bearer {await keys.create()}"
    return client


def render_job(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "provider": "render",
        "image": "ghcr.io/acme/worker:1.2",
        "duration": 120,
        "env": {"RENDER_FAKE_OUTPUT": "rendering\ndone", "RENDER_FAKE_SECONDS": "0.3"},
        "ports": [{"port": 8080, "expose": True}],
        "gpu": {"count": 1, "model": "NVIDIA RTX 4090"},
    }
    values.update(overrides)
    return job_spec(**values)


async def test_a_render_job_runs_with_its_logs(
    database_url: str, keys: Keys, fake: tuple[FakeRender, str]
) -> None:
    server, url = fake
    app = create_app(engine_settings(database_url), extra_providers=[render_adapter(url)])
    async with lifespan_app(app) as running:
        client = await client_of(running, keys)
        async with client:
            job_id = await submit(client, render_job())
            job = await wait_for(client, job_id)
            lines = await log_lines(client, job_id)
    assert job["status"] == "completed", job
    assert job["provider"] == "render"
    assert job["config"]["gpu"] == {"count": 1, "model": "NVIDIA RTX 4090", "minVram": None}
    assert job["cost"]["projected"] == pytest.approx(0.35 * 120 / 3600, abs=1e-6)
    assert lines == ["rendering", "done"]
    assert [event["type"] for event in job["events"]][:2] == ["created", "scheduled"]
    assert any("assigned" in (event["message"] or "") for event in job["events"])
    assert len(server.jobs) == 1
    assert all(status < 400 for _, _, status in server.seen)


async def test_a_gateway_restart_never_creates_a_second_render_job(
    database_url: str, keys: Keys, fake: tuple[FakeRender, str]
) -> None:
    server, url = fake
    env = {"RENDER_FAKE_OUTPUT": "a\nb", "RENDER_FAKE_SECONDS": "1.5"}
    settings = engine_settings(database_url)
    async with lifespan_app(create_app(settings, extra_providers=[render_adapter(url)])) as first:
        client = await client_of(first, keys)
        async with client:
            job_id = await submit(client, render_job(env=env))
            await wait_for(client, job_id, {"running"})
    async with lifespan_app(create_app(settings, extra_providers=[render_adapter(url)])) as second:
        client = await client_of(second, keys)
        async with client:
            job = await wait_for(client, job_id)
            lines = await log_lines(client, job_id)
    assert job["status"] == "completed"
    assert lines == ["a", "b"]
    assert len(server.jobs) == 1


async def test_cancelling_a_render_job_cancels_it_on_render(
    database_url: str, keys: Keys, fake: tuple[FakeRender, str]
) -> None:
    server, url = fake
    app = create_app(engine_settings(database_url), extra_providers=[render_adapter(url)])
    async with lifespan_app(app) as running:
        client = await client_of(running, keys)
        async with client:
            job_id = await submit(client, render_job(env={"RENDER_FAKE_SECONDS": "60"}))
            await wait_for(client, job_id, {"running"})
            await client.post(f"{API}/jobs/{job_id}/cancel")
            job = await wait_for(client, job_id)
    assert job["status"] == "cancelled"
    assert [job.status for job in server.jobs.values()] == ["CANCELLED"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"command": ["sh", "-c", "echo hi"]}, "command"),
        ({"args": ["--fast"]}, "args"),
        ({"volumes": [{"name": "data", "mountPath": "/data"}]}, "volumes"),
        ({"duration": 59}, "duration"),
        ({"gpu": {"model": "NVIDIA GTX 480"}}, "gpu.model"),
    ],
)
async def test_what_render_cannot_run_answers_400_naming_the_field(
    database_url: str,
    keys: Keys,
    fake: tuple[FakeRender, str],
    overrides: dict[str, Any],
    field: str,
) -> None:
    server, url = fake
    app = create_app(engine_settings(database_url), extra_providers=[render_adapter(url)])
    async with lifespan_app(app) as running:
        client = await client_of(running, keys)
        async with client:
            response = await client.post(f"{API}/jobs", json=render_job(**overrides))
            listed = (await client.get(f"{API}/jobs")).json()["data"]
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in error["details"]] == [field]
    assert listed == [] and server.jobs == {}


async def test_a_provider_without_gpus_refuses_a_gpu_job(database_url: str, keys: Keys) -> None:
    async with lifespan_app(create_app(engine_settings(database_url))) as running:
        client = await client_of(running, keys)
        async with client:
            response = await client.post(
                f"{API}/jobs", json=job_spec(provider="local", gpu={"count": 1})
            )
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"field": "gpu", "message": "local cannot provide GPUs", "type": "provider_capability"}
    ]


async def test_render_without_keys_answers_503(database_url: str, keys: Keys) -> None:
    async with lifespan_app(create_app(engine_settings(database_url))) as running:
        client = await client_of(running, keys)
        async with client:
            response = await client.post(f"{API}/jobs", json=render_job())
    assert response.status_code == 503
    assert "is not configured" in response.json()["error"]["message"]
