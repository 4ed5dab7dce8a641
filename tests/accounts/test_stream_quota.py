"""Open streams per key against a real uvicorn gateway: streams count while they are open and
a closed one gives its place back. (In-process ASGI transports buffer whole responses, so an
open stream can only be held over a real connection.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from tests.client.gateway import served
from tests.factories import API, Keys

FOLLOW = {"follow": "true"}


@asynccontextmanager
async def account_stream(http: httpx.AsyncClient) -> AsyncIterator[httpx.Response]:
    """GET /jobs/events?follow=true held open; its answer's headers are in when it yields."""
    async with http.stream("GET", f"{API}/jobs/events", params=FOLLOW) as response:
        yield response


async def test_a_key_may_hold_max_streams_open_and_a_closed_one_frees_its_place(
    database_url: str, keys: Keys
) -> None:
    key = await keys.create(account="alpha", scope=("jobs:read",))
    other_key = await keys.create(account="alpha", scope=("jobs:read",))
    async with (
        served(database_url, default_max_streams_per_key=2) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http,
        AsyncExitStack() as held,
        AsyncExitStack() as closed_later,
    ):
        first = await closed_later.enter_async_context(account_stream(http))
        second = await held.enter_async_context(account_stream(http))
        assert (first.status_code, second.status_code) == (200, 200)
        quotas = (await http.get(f"{API}/account")).json()["data"]["quotas"]
        assert {"name": "max_streams_per_key", "limit": 2, "current": 2} in quotas

        async with account_stream(http) as third:
            await third.aread()
        assert third.status_code == 403
        error = third.json()["error"]
        assert error["code"] == "QUOTA_EXCEEDED"
        assert "max_streams_per_key" in error["message"]
        assert error["details"] == [{"quota": "max_streams_per_key", "limit": 2, "current": 2}]

        # The quota is per key: another key of the account still opens one.
        other = {"Authorization": f"Bearer {other_key}"}
        async with http.stream("GET", f"{API}/jobs/events", params=FOLLOW, headers=other) as own:
            assert own.status_code == 200

        await closed_later.aclose()  # the client closes the first stream
        deadline = time.monotonic() + 10
        while True:
            again = await held.enter_async_context(account_stream(http))
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            await again.aread()
            await asyncio.sleep(0.2)
        assert again.status_code == 200, "the closed stream's lease was not released"
        async with account_stream(http) as over:
            await over.aread()
        assert over.status_code == 403, "the new stream and the second fill the quota again"
