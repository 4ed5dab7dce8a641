"""The dispatcher shares its sends fairly between endpoints: a backlog at one endpoint does not
hold back another's delivery, and a receiver that drips its answer is cut at the deadline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.application import create_app
from tests.factories import API, Keys
from tests.servers import lifespan_app, uvicorn_server
from tests.webhooks.conftest import Receiver, receiver_app, webhook_settings
from tests.webhooks.test_webhooks import deliveries, subscribe

SCOPES = ["webhooks:read", "webhooks:write"]


@asynccontextmanager
async def gateway_with(
    database_url: str, keys: Keys, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    async with lifespan_app(create_app(webhook_settings(database_url, **settings))) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create(scope=SCOPES)}"
            yield client


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with uvicorn_server(receiver_app(receiver)) as url:
        receiver.url = f"{url}/hook"
        yield receiver


class Drip:
    """A receiver that answers 200 with its headers at once, then one byte at a time."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.started = asyncio.Event()
        self.ended = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.log.append("start")
        self.started.set()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        try:
            for _ in range(1000):
                writer.write(b".")
                await writer.drain()
                await asyncio.sleep(0.3)
            self.log.append("sent everything")
        except ConnectionError:
            pass
        finally:
            self.log.append("end")
            self.ended.set()
            writer.close()


@asynccontextmanager
async def dripping() -> AsyncIterator[tuple[Drip, str]]:
    drip = Drip()
    server = await asyncio.start_server(drip.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield drip, f"http://127.0.0.1:{port}/hook"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def first_attempt(client: httpx.AsyncClient, endpoint_id: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            found = await deliveries(client, endpoint_id)
            if found and found[0]["attempts"]:
                attempt: dict[str, Any] = found[0]["attempts"][0]
                return attempt
            await asyncio.sleep(0.1)


class TestDispatcherFairness:
    async def test_a_dripping_receiver_is_cut_at_the_deadline_and_holds_no_one_else(
        self, database_url: str, keys: Keys
    ) -> None:
        async with (
            gateway_with(
                database_url, keys, webhook_timeout=4.0, webhook_retry_schedule="60"
            ) as gateway,
            dripping() as (drip, drip_url),
            receiving() as prompt,
        ):
            slow = await subscribe(gateway, drip_url)
            await gateway.post(f"{API}/webhooks/{slow['id']}/test")
            async with asyncio.timeout(20):
                await drip.started.wait()
            other = await subscribe(gateway, prompt.url)
            await gateway.post(f"{API}/webhooks/{other['id']}/test")
            await prompt.wait_for(1)
            # Delivered while the drip was still going.
            assert drip.log == ["start"]

            attempt = await first_attempt(gateway, slow["id"])
            async with asyncio.timeout(10):
                await drip.ended.wait()

        assert attempt["error"] == "timed out after 4 s"
        assert attempt["statusCode"] is None
        assert drip.log == ["start", "end"], "cut before the answer ended"

    async def test_a_backlog_at_one_endpoint_does_not_hold_back_another(
        self, database_url: str, keys: Keys
    ) -> None:
        per_endpoint = 2
        async with (
            gateway_with(
                database_url,
                keys,
                webhook_concurrency=4,
                webhook_endpoint_concurrency=per_endpoint,
            ) as gateway,
            receiving() as busy,
            receiving() as quiet,
        ):
            busy.script = [0.3] * 50
            crowded = await subscribe(gateway, busy.url)
            for _ in range(50):
                await gateway.post(f"{API}/webhooks/{crowded['id']}/test")
            lonely = await subscribe(gateway, quiet.url)
            await gateway.post(f"{API}/webhooks/{lonely['id']}/test")
            before = len(busy.requests)
            await quiet.wait_for(1)
            after = len(busy.requests)
            busy_left = 50 - after
            await busy.wait_for(50, timeout=60)

        # Only the backlog's own share went ahead of it, not the rest of the 50.
        assert after <= before + 2 * per_endpoint, (before, after)
        assert busy_left > 0
