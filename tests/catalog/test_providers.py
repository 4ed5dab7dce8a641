"""GET /providers and GET /providers/{name}: health, capabilities and pricing per provider."""

from __future__ import annotations

import httpx

from app.application import create_app
from app.settings import Settings
from providers import available_providers
from tests.factories import API, Keys
from tests.servers import lifespan_app


class TestListProviders:
    async def test_every_registered_provider_is_listed_once(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get(f"{API}/providers")
        assert response.status_code == 200, response.text
        listed = [provider["name"] for provider in response.json()["data"]]
        assert listed == list(available_providers())

    async def test_the_local_runtime_is_healthy_and_can_run_everything_but_gpus(
        self, client: httpx.AsyncClient
    ) -> None:
        providers = {p["name"]: p for p in (await client.get(f"{API}/providers")).json()["data"]}
        local = providers["local"]
        assert local["health"] == {"status": "healthy", "reason": None}
        assert local["capabilities"] == {
            "ports": True,
            "commandOverride": True,
            "volumes": True,
            "gpus": False,
            "minDuration": 1,
            "maxDuration": None,
        }
        assert local["pricing"]["description"]

    async def test_a_key_without_jobs_read_is_forbidden(
        self, app_client: httpx.AsyncClient, keys: Keys
    ) -> None:
        secret = await keys.create(scope=["webhooks:read"])
        response = await app_client.get(
            f"{API}/providers", headers={"Authorization": f"Bearer {secret}"}
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "FORBIDDEN"

    async def test_no_key_is_unauthorized(self, app_client: httpx.AsyncClient) -> None:
        response = await app_client.get(f"{API}/providers")
        assert response.status_code == 401


class TestGetProvider:
    async def test_one_provider_by_name(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"{API}/providers/local")
        assert response.status_code == 200
        assert response.json()["data"]["name"] == "local"

    async def test_an_unknown_name_answers_404_listing_the_names(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get(f"{API}/providers/aws")
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "PROVIDER_NOT_FOUND"
        assert "local" in error["message"]

    async def test_an_unreachable_runtime_is_unhealthy_with_the_reason(
        self, database_url: str, keys: Keys
    ) -> None:
        settings = Settings(
            database_url=database_url,
            engine_enabled=False,
            docker_host="unix:///nonexistent/cortex.sock",
        )
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create()}"
                response = await client.get(f"{API}/providers/local")
        health = response.json()["data"]["health"]
        assert health["status"] == "unhealthy"
        assert "unreachable" in health["reason"]
        # ... and what to do about it.
        assert "podman system service" in health["reason"]
        assert "restart the gateway with DOCKER_HOST set to its socket" in health["reason"]
