"""Account stream tokens: a browser's EventSource follows the account's status changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import busybox, engine_settings, submit
from tests.factories import API, Keys
from tests.servers import uvicorn_server
from tests.streams.sse_client import Event, events

TOKEN_TTL = 2


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[str]:
    settings = engine_settings(database_url, stream_token_ttl=TOKEN_TTL)
    async with uvicorn_server(create_app(settings)) as url:
        yield url


@pytest.fixture
async def client(server: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {await keys.create()}"}
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=60) as c:
        yield c


@pytest.fixture
async def browser(server: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client without a key, as an EventSource is."""
    async with httpx.AsyncClient(base_url=server, timeout=60) as c:
        yield c


async def account_token(client: httpx.AsyncClient) -> str:
    issued = await client.post(f"{API}/jobs/events/stream-token")
    assert issued.status_code == 201, issued.text
    assert issued.json()["data"]["expiresAt"].endswith("Z")
    token: str = issued.json()["data"]["token"]
    return token


class TestAccountStreamToken:
    async def test_a_token_follows_the_accounts_status_changes_without_a_key(
        self, client: httpx.AsyncClient, browser: httpx.AsyncClient, keys: Keys, server: str
    ) -> None:
        token = await account_token(client)
        received: list[Event] = []

        async def follow() -> None:
            path = f"{API}/jobs/events?follow=true&token={token}"
            async with browser.stream("GET", path) as response:
                assert response.status_code == 200
                async for event in events(response):
                    received.append(event)
                    if event.json()["type"] == "completed":
                        return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.5)
        headers = {"Authorization": f"Bearer {await keys.create(account='beta')}"}
        async with httpx.AsyncClient(base_url=server, headers=headers) as other:
            await submit(other, busybox("true"))
        job_id = await submit(client, busybox("true"))
        async with asyncio.timeout(30):
            await follower

        assert {event.json()["jobId"] for event in received} == {job_id}
        assert [event.json()["type"] for event in received] == [
            "created",
            "scheduled",
            "started",
            "completed",
        ]

    async def test_a_token_lists_recent_changes_without_follow(
        self, client: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        job_id = await submit(client, busybox("true"))
        token = await account_token(client)

        listed = await browser.get(f"{API}/jobs/events?token={token}")

        assert listed.status_code == 200, listed.text
        assert listed.json()["data"]["events"][0]["jobId"] == job_id

    async def test_an_account_token_opens_no_job_and_a_job_token_not_the_account(
        self, client: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        job_id = await submit(client, busybox("true"))
        account = await account_token(client)
        job = (await client.post(f"{API}/jobs/{job_id}/stream-token")).json()["data"]["token"]

        responses = [
            await browser.get(f"{API}/jobs/{job_id}/events?token={account}"),
            await browser.get(f"{API}/jobs/{job_id}/logs?token={account}"),
            await browser.get(f"{API}/jobs/{job_id}?token={account}"),
            await browser.get(f"{API}/jobs?token={account}"),
            await browser.get(f"{API}/jobs/events?token={job}"),
        ]

        for response in responses:
            assert response.status_code == 401, (response.url, response.text)
            assert response.json()["error"]["code"] == "UNAUTHORIZED"

    async def test_tampered_expired_and_missing_credentials_are_401(
        self, client: httpx.AsyncClient, browser: httpx.AsyncClient
    ) -> None:
        token = await account_token(client)
        payload, _, signature = token.partition(".")
        tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
        api_key = client.headers["Authorization"].removeprefix("Bearer ")

        for bad in (tampered, api_key, "garbage"):
            response = await browser.get(f"{API}/jobs/events?token={bad}")
            assert response.status_code == 401, (bad, response.text)
        assert (await browser.get(f"{API}/jobs/events")).status_code == 401
        assert (await browser.post(f"{API}/jobs/events/stream-token")).status_code == 401
        await asyncio.sleep(TOKEN_TTL + 0.5)
        expired = await browser.get(f"{API}/jobs/events?follow=true&token={token}")
        assert expired.status_code == 401
        assert expired.json()["error"]["message"] == "Invalid or expired stream token."

    async def test_a_key_without_jobs_read_gets_no_token(self, server: str, keys: Keys) -> None:
        headers = {"Authorization": f"Bearer {await keys.create(scope=['webhooks:read'])}"}
        async with httpx.AsyncClient(base_url=server, headers=headers) as c:
            response = await c.post(f"{API}/jobs/events/stream-token")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "FORBIDDEN"
