"""Revoking a key ends its open streams, opened with the key or with a token it issued."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from app.application import create_app
from app.auth import cache
from tests.engine.conftest import busybox, engine_settings, submit
from tests.factories import API, Keys
from tests.servers import uvicorn_server
from tests.streams.sse_client import events


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[str]:
    settings = engine_settings(database_url, stream_heartbeat=0.5)
    async with uvicorn_server(create_app(settings)) as url:
        yield url


async def _ends_within_the_cache_window(
    client: httpx.AsyncClient, path: str, keys: Keys, secret: str
) -> None:
    async with client.stream("GET", path) as response:
        assert response.status_code == 200
        revoked_at = None
        async for event in events(response):
            if revoked_at is None:
                await keys.revoke(secret)
                revoked_at = time.monotonic()
            if event.event == "revoked":
                break
        else:
            raise AssertionError("the stream closed without saying why")
    assert revoked_at is not None
    assert time.monotonic() - revoked_at <= cache.TTL_SECONDS + 2


@pytest.mark.parametrize("with_token", [False, True])
async def test_a_revoked_keys_open_stream_ends(server: str, keys: Keys, with_token: bool) -> None:
    secret = await keys.create()
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=60) as client:
        job_id = await submit(client, busybox("while true; do echo tick; sleep 0.2; done"))
        path = f"{API}/jobs/{job_id}/logs?follow=true"
        if with_token:
            issued = await client.post(f"{API}/jobs/{job_id}/stream-token")
            token = issued.json()["data"]["token"]
            path += f"&token={token}"
            client.headers.pop("Authorization")
        await _ends_within_the_cache_window(client, path, keys, secret)
        # A token of the revoked key opens nothing more.
        if with_token:
            assert (await client.get(path)).status_code == 401
        client.headers["Authorization"] = f"Bearer {await keys.create()}"
        await client.post(f"{API}/jobs/{job_id}/cancel")
