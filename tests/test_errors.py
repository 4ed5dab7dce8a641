"""Every row of the error table, answered in the envelope."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.routing import Route

from app.application import create_app
from app.settings import Settings
from tests.factories import API, job_spec
from tests.servers import lifespan_app


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    error: dict[str, object] = body["error"]
    return error


class TestRequestBodies:
    async def test_invalid_json_is_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"{API}/jobs",
            content=b'{"provider": "local",',
            headers={"content-type": "application/json"},
        )
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert "not valid JSON" in str(error["message"])

    async def test_json_that_is_not_an_object_is_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(f"{API}/jobs", json=[job_spec()])
        assert_error(response, 400, "VALIDATION_ERROR")

    async def test_wrong_content_type_is_415(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"{API}/jobs", content=b"provider=local", headers={"content-type": "text/plain"}
        )
        error = assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert "application/json" in str(error["message"])

    async def test_missing_content_type_is_415(self, client: httpx.AsyncClient) -> None:
        response = await client.post(f"{API}/jobs", content=b"{}")
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")

    async def test_body_over_the_limit_is_413(self, client: httpx.AsyncClient) -> None:
        huge = job_spec(env={"BIG": "x" * 30_000, **{f"V{i}": "y" * 30_000 for i in range(40)}})
        response = await client.post(f"{API}/jobs", json=huge)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")

    async def test_nothing_is_written_when_the_body_is_rejected(
        self, client: httpx.AsyncClient
    ) -> None:
        await client.post(f"{API}/jobs", content=b"{", headers={"content-type": "application/json"})
        listing = await client.get(f"{API}/jobs")
        assert listing.json()["data"] == []
        assert listing.json()["meta"]["pagination"]["total"] == 0


class TestRouting:
    async def test_unknown_route_is_404(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get(f"{API}/nothing-here"), 404, "NOT_FOUND")
        assert_error(await client.get("/elsewhere"), 404, "NOT_FOUND")

    async def test_wrong_method_is_405_with_allow(self, client: httpx.AsyncClient) -> None:
        response = await client.delete(f"{API}/jobs")
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


class TestAuthentication:
    async def test_missing_key_is_401(self, app_client: httpx.AsyncClient) -> None:
        response = await app_client.get(f"{API}/jobs")
        assert_error(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize(
        "header", ["cgw_abc", "Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token cgw_x"]
    )
    async def test_malformed_header_is_401(
        self, app_client: httpx.AsyncClient, header: str
    ) -> None:
        response = await app_client.get(f"{API}/jobs", headers={"Authorization": header})
        assert_error(response, 401, "UNAUTHORIZED")

    async def test_unknown_key_is_401(self, app_client: httpx.AsyncClient) -> None:
        response = await app_client.get(
            f"{API}/jobs", headers={"Authorization": "Bearer cgw_" + "A" * 40}
        )
        assert_error(response, 401, "UNAUTHORIZED")

    async def test_revoked_key_is_401_within_moments(
        self, app_client: httpx.AsyncClient, keys
    ) -> None:
        secret = await keys.create()
        headers = {"Authorization": f"Bearer {secret}"}
        assert (await app_client.get(f"{API}/jobs", headers=headers)).status_code == 200
        await keys.revoke(secret)
        # Processes remember keys for seconds; a revocation notifies them all when it commits.
        response = await app_client.get(f"{API}/jobs", headers=headers)
        for _ in range(20):
            if response.status_code == 401:
                break
            await asyncio.sleep(0.05)
            response = await app_client.get(f"{API}/jobs", headers=headers)
        assert_error(response, 401, "UNAUTHORIZED")

    async def test_bearer_scheme_is_case_insensitive(
        self, app_client: httpx.AsyncClient, keys
    ) -> None:
        secret = await keys.create()
        response = await app_client.get(
            f"{API}/jobs", headers={"Authorization": f"bearer {secret}"}
        )
        assert response.status_code == 200

    async def test_authentication_comes_before_body_validation(
        self, app_client: httpx.AsyncClient
    ) -> None:
        response = await app_client.post(f"{API}/jobs", content=b"{")
        assert_error(response, 401, "UNAUTHORIZED")


class TestScopes:
    async def test_read_only_key_cannot_submit(self, app_client: httpx.AsyncClient, keys) -> None:
        secret = await keys.create(scope=["jobs:read"])
        response = await app_client.post(
            f"{API}/jobs", json=job_spec(), headers={"Authorization": f"Bearer {secret}"}
        )
        error = assert_error(response, 403, "FORBIDDEN")
        assert "jobs:write" in str(error["message"])

    async def test_write_only_key_cannot_list(self, app_client: httpx.AsyncClient, keys) -> None:
        secret = await keys.create(scope=["jobs:write"])
        response = await app_client.get(
            f"{API}/jobs", headers={"Authorization": f"Bearer {secret}"}
        )
        assert_error(response, 403, "FORBIDDEN")

    async def test_admin_key_may_do_everything(self, app_client: httpx.AsyncClient, keys) -> None:
        headers = {"Authorization": f"Bearer {await keys.create(scope=['admin'])}"}
        created = await app_client.post(f"{API}/jobs", json=job_spec(), headers=headers)
        assert created.status_code == 201
        assert (await app_client.get(f"{API}/jobs", headers=headers)).status_code == 200


class TestInternalErrors:
    async def test_unexpected_exception_is_500_without_a_trace(self, settings: Settings) -> None:
        app = create_app(settings)

        async def explode(request: object) -> None:
            raise RuntimeError("secret internals: /etc/passwd line 42")

        app.router.routes.append(Route("/explode", explode))
        async with lifespan_app(app) as running:
            transport = httpx.ASGITransport(app=running, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
                response = await c.get("/explode")
        assert_error(response, 500, "INTERNAL_ERROR")
        assert "secret internals" not in response.text
        assert "Traceback" not in response.text
