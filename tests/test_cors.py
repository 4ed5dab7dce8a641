"""CORS: which web origins may call the API and open its streams (CORTEX_CORS_ORIGINS),
preflights answered or refused in the error envelope, and the grants on every response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.application import create_app
from app.settings import Settings
from tests.factories import API, Keys, job_spec, seed_jobs
from tests.servers import lifespan_app

ALLOWED = "http://app.example.com"
OTHER = "http://evil.example.net"

Gateway = Callable[[str], Any]


@pytest.fixture
def gateway(database_url: str, keys: Keys) -> Gateway:
    """A gateway with `cors_origins`, and a client holding a jobs key."""

    @asynccontextmanager
    async def start(origins: str) -> AsyncIterator[httpx.AsyncClient]:
        settings = Settings(database_url=database_url, engine_enabled=False, cors_origins=origins)
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create()}"
                yield client

    return start


def preflight(origin: str, method: str = "POST", headers: str = "") -> dict[str, str]:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return asked


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


class TestPreflight:
    async def test_an_allowed_origin_may_send_the_api_headers(self, gateway: Gateway) -> None:
        async with gateway(f"{ALLOWED},http://localhost:3000") as client:
            asked = "authorization, content-type, idempotency-key"
            response = await client.options(
                f"{API}/jobs", headers=preflight(ALLOWED, "POST", asked)
            )
            for_stream = await client.options(
                f"{API}/jobs/job_0123456789abcdef/logs",
                headers=preflight(ALLOWED, "GET", "last-event-id"),
            )

        assert response.status_code == 204
        granted = cors_headers(response)
        assert granted["access-control-allow-origin"] == ALLOWED
        assert granted["access-control-allow-credentials"] == "true"
        allowed = {h.strip().lower() for h in granted["access-control-allow-headers"].split(",")}
        assert allowed >= {"authorization", "content-type", "idempotency-key", "last-event-id"}
        assert {"POST", "GET", "PATCH", "DELETE"} <= set(
            granted["access-control-allow-methods"].replace(" ", "").split(",")
        )
        assert int(granted["access-control-max-age"]) > 0
        assert "Origin" in response.headers["vary"]
        assert for_stream.status_code == 204
        assert cors_headers(for_stream)["access-control-allow-origin"] == ALLOWED

    async def test_another_origin_is_refused_in_the_envelope_without_a_grant(
        self, gateway: Gateway
    ) -> None:
        async with gateway(ALLOWED) as client:
            response = await client.options(
                f"{API}/jobs", headers=preflight(OTHER, "POST", "authorization")
            )

        assert response.status_code == 403
        assert cors_headers(response) == {}
        error = response.json()["error"]
        assert error["code"] == "FORBIDDEN"
        assert error["details"][0]["field"] == "Origin"
        assert OTHER in error["message"]

    @pytest.mark.parametrize(
        ("method", "asked", "field"),
        [
            ("POST", "authorization, x-forwarded-for", "Access-Control-Request-Headers"),
            ("TRACE", "", "Access-Control-Request-Method"),
        ],
    )
    async def test_headers_and_methods_outside_the_list_are_refused(
        self, gateway: Gateway, method: str, asked: str, field: str
    ) -> None:
        async with gateway(ALLOWED) as client:
            response = await client.options(
                f"{API}/jobs", headers=preflight(ALLOWED, method, asked)
            )
        assert response.status_code == 403
        assert response.json()["error"]["details"][0]["field"] == field
        assert "access-control-allow-origin" not in response.headers

    async def test_with_nothing_configured_no_origin_is_granted(self, gateway: Gateway) -> None:
        async with gateway("") as client:
            refused = await client.options(f"{API}/jobs", headers=preflight(ALLOWED))
            listed = await client.get(f"{API}/jobs", headers={"Origin": ALLOWED})
        assert refused.status_code == 403 and cors_headers(refused) == {}
        assert listed.status_code == 200 and cors_headers(listed) == {}

    async def test_a_plain_options_request_is_still_405(self, gateway: Gateway) -> None:
        async with gateway(ALLOWED) as client:
            response = await client.options(f"{API}/jobs")
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


class TestResponses:
    async def test_an_allowed_origin_reads_answers_and_errors_with_their_headers(
        self, gateway: Gateway
    ) -> None:
        async with gateway(ALLOWED) as client:
            created = await client.post(f"{API}/jobs", json=job_spec(), headers={"Origin": ALLOWED})
            unauthorized = await client.get(
                f"{API}/jobs", headers={"Origin": ALLOWED, "Authorization": "Bearer nope"}
            )
            refused = await client.get(f"{API}/jobs", headers={"Origin": OTHER})

        for response in (created, unauthorized):
            granted = cors_headers(response)
            assert granted["access-control-allow-origin"] == ALLOWED
            assert granted["access-control-allow-credentials"] == "true"
            exposed = {h.strip() for h in granted["access-control-expose-headers"].split(",")}
            assert exposed >= {"X-Request-ID", "Retry-After", "RateLimit-Policy", "RateLimit"}
        assert created.status_code == 201 and "ratelimit" in created.headers
        assert unauthorized.status_code == 401
        # The request is served (CORS binds browsers, not servers), but the page cannot read it.
        assert refused.status_code == 200 and cors_headers(refused) == {}
        assert "Origin" in refused.headers["vary"]

    async def test_a_stream_carries_the_grant(self, gateway: Gateway, db: Any) -> None:
        async with gateway(ALLOWED) as client:
            [job_id] = await seed_jobs(db, "alpha", [{"status": "completed"}])
            token = (await client.post(f"{API}/jobs/{job_id}/stream-token")).json()["data"]
            response = await client.get(
                f"{API}/jobs/{job_id}/logs",
                params={"follow": "true", "token": token["token"]},
                headers={"Origin": ALLOWED, "Authorization": ""},
            )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "event: end" in response.text
        assert cors_headers(response)["access-control-allow-origin"] == ALLOWED

    async def test_star_grants_any_origin_without_credentials(self, gateway: Gateway) -> None:
        async with gateway("*") as client:
            answered = await client.options(f"{API}/jobs", headers=preflight(OTHER, "POST"))
            listed = await client.get(f"{API}/jobs", headers={"Origin": OTHER})
        for response in (answered, listed):
            granted = cors_headers(response)
            assert granted["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in granted

    async def test_exact_origins_keep_credentials_beside_star(self, gateway: Gateway) -> None:
        async with gateway(f"{ALLOWED}, *") as client:
            exact = await client.get(f"{API}/jobs", headers={"Origin": ALLOWED})
            anyone = await client.get(f"{API}/jobs", headers={"Origin": OTHER})
        assert cors_headers(exact)["access-control-allow-credentials"] == "true"
        assert cors_headers(exact)["access-control-allow-origin"] == ALLOWED
        assert cors_headers(anyone)["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in cors_headers(anyone)

    async def test_the_dashboard_and_operations_routes_get_no_grant(self, gateway: Gateway) -> None:
        async with gateway("*") as client:
            page = await client.get("/", headers={"Origin": OTHER})
        assert cors_headers(page) == {}


@pytest.mark.parametrize(
    "origins",
    [
        "https://app.example.com/",  # a trailing slash: browsers never send one
        "https://app.example.com/dashboard",
        "app.example.com",
        "ftp://app.example.com",
        "https://App.Example.com",
        ",".join(f"https://a{i}.example.com" for i in range(101)),  # over the 100 origins
    ],
)
def test_settings_refuse_what_is_not_an_origin(origins: str) -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings(cors_origins=origins)


def test_settings_accept_up_to_100_origins() -> None:
    origins = ",".join(f"https://a{i}.example.com:8443" for i in range(100))
    assert len(Settings(cors_origins=origins).cors_origin_list) == 100
