"""Each API key's request rate, in one gateway: 429 with Retry-After once the bucket is
empty, and the RateLimit headers on every authenticated API answer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.application import create_app
from app.settings import Settings
from tests.factories import API, Keys
from tests.servers import lifespan_app

RATE, BURST = 0.1, 3
POLICY = '"default";q=3;w=30'
REMAINING = re.compile(r'^"default";r=(\d+);t=(\d+)$')


@pytest.fixture
async def gateway(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=database_url,
        engine_enabled=False,
        default_rate_limit=RATE,
        default_rate_burst=BURST,
    )
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def remaining(response: httpx.Response) -> tuple[int, int]:
    match = REMAINING.match(response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return int(match[1]), int(match[2])


async def test_a_key_gets_its_burst_then_429_with_retry_after(
    gateway: httpx.AsyncClient, keys: Keys
) -> None:
    key = bearer(await keys.create(account="alpha"))
    answers = [await gateway.get(f"{API}/jobs", headers=key) for _ in range(BURST)]
    assert [a.status_code for a in answers] == [200] * BURST
    assert {a.headers["ratelimit-policy"] for a in answers} == {POLICY}
    assert [remaining(a)[0] for a in answers] == [2, 1, 0]

    refused = await gateway.post(f"{API}/jobs", headers=key, json={})
    assert refused.status_code == 429
    body: dict[str, Any] = refused.json()
    assert body["success"] is False
    assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    # One request's worth of tokens at 0.1/s: ten seconds, whole, rounded up.
    assert refused.headers["retry-after"].isdigit()
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert refused.headers["ratelimit-policy"] == POLICY
    assert remaining(refused)[0] == 0
    # Nothing was created by the refused submission.
    assert (await gateway.get(f"{API}/jobs", headers=key)).status_code == 429


async def test_another_key_has_its_own_bucket(gateway: httpx.AsyncClient, keys: Keys) -> None:
    flooding = bearer(await keys.create(account="alpha"))
    for _ in range(BURST + 2):
        await gateway.get(f"{API}/jobs", headers=flooding)
    other = bearer(await keys.create(account="beta"))
    answer = await gateway.get(f"{API}/jobs", headers=other)
    assert answer.status_code == 200
    assert remaining(answer)[0] == BURST - 1


async def test_refused_scopes_count_and_carry_the_headers(
    gateway: httpx.AsyncClient, keys: Keys
) -> None:
    reader = bearer(await keys.create(account="alpha", scope=("jobs:read",)))
    forbidden = await gateway.post(f"{API}/jobs", headers=reader, json={})
    assert forbidden.status_code == 403
    assert remaining(forbidden)[0] == BURST - 1


async def test_unauthenticated_and_public_answers_carry_no_rate_headers(
    gateway: httpx.AsyncClient,
) -> None:
    unauthorized = await gateway.get(f"{API}/jobs")
    assert unauthorized.status_code == 401
    health = await gateway.get(f"{API}/health")
    for answer in (unauthorized, health):
        assert "ratelimit" not in answer.headers
        assert "ratelimit-policy" not in answer.headers


async def test_a_rate_of_zero_is_unlimited(database_url: str, keys: Keys) -> None:
    settings = Settings(database_url=database_url, engine_enabled=False, default_rate_limit=0)
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            key = bearer(await keys.create(account="alpha"))
            answers = [await client.get(f"{API}/jobs", headers=key) for _ in range(20)]
    assert {a.status_code for a in answers} == {200}
    assert "ratelimit" not in answers[-1].headers


async def test_the_openapi_document_lists_429_for_authenticated_operations(
    gateway: httpx.AsyncClient,
) -> None:
    document = (await gateway.get(f"{API}/openapi.json")).json()
    for path, methods in document["paths"].items():
        for method, spec in methods.items():
            if "security" in spec:
                assert "RATE_LIMIT_EXCEEDED" in spec["responses"]["429"]["description"], (
                    method,
                    path,
                )
