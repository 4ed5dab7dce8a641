"""A template is stored whatever its provider's health (health is asked when a job is made
from it); what the provider can never run is still refused. The provider here is Akash on its
fake Console, unhealthy because the gateway's API key is not one the Console knows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.application import create_app
from app.settings import Settings
from tests.factories import API, Keys, job_spec
from tests.fakes.akash import running_fake
from tests.servers import lifespan_app

TEMPLATES = f"{API}/jobs/templates"
SCOPES = ("jobs:read", "jobs:write", "templates:read", "templates:write")


@pytest.fixture
async def gateway(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    async with running_fake(api_key="ac.sk.known." + "1" * 64) as akash:
        settings = Settings(
            database_url=database_url,
            engine_enabled=False,
            akash_api_url=akash.console_url,
            akash_api_key="ac.sk.unknown." + "2" * 64,
        )
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create(scope=SCOPES)}"
                yield client


async def test_the_provider_is_unhealthy(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(f"{API}/jobs", json=job_spec(provider="akash"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"


async def test_a_template_is_created_and_updated_while_its_provider_is_down(
    gateway: httpx.AsyncClient,
) -> None:
    body = {"name": "web", "config": job_spec(provider="akash", image="nginx:alpine")}
    created = await gateway.post(TEMPLATES, json=body)
    assert created.status_code == 201, created.text
    template = created.json()["data"]
    assert template["config"]["provider"] == "akash"

    update = {"config": job_spec(provider="akash", image="nginx:1.27", cpu=2000)}
    updated = await gateway.patch(f"{TEMPLATES}/{template['id']}", json=update)
    assert updated.status_code == 200, updated.text
    stored = (await gateway.get(f"{TEMPLATES}/{template['id']}")).json()["data"]
    assert (stored["config"]["image"], stored["config"]["cpu"]) == ("nginx:1.27", 2000)

    # Its health is asked when it is used.
    used = await gateway.post(f"{API}/jobs/from-template/{template['id']}", json={})
    assert used.status_code == 503
    error = used.json()["error"]
    assert error["code"] == "PROVIDER_UNAVAILABLE"
    assert [detail["field"] for detail in error["details"]] == ["provider"]
    listing = (await gateway.get(f"{API}/jobs")).json()
    assert listing["meta"]["pagination"]["total"] == 0


async def test_a_config_the_provider_can_never_run_is_still_refused(
    gateway: httpx.AsyncClient,
) -> None:
    # Akash needs at least 5Mi of storage: refused without asking the network.
    body = {"name": "tiny", "config": job_spec(provider="akash", storage="2Mi")}
    response = await gateway.post(TEMPLATES, json=body)
    assert response.status_code == 400, response.text
    [detail] = response.json()["error"]["details"]
    assert (detail["field"], detail["type"]) == ("config.storage", "provider_capability")
