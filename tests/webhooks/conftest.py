"""A webhook receiver on 127.0.0.1 that verifies every request as a partner server would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.application import create_app
from app.settings import Settings
from tests.engine.conftest import engine_settings
from tests.factories import Keys
from tests.servers import lifespan_app, uvicorn_server


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    # Answers for the next requests, in order; then 200.
    script: list[int | float] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def verified(self, secret: str) -> list[Any]:
        """Every request's body, each one checked with the standardwebhooks library."""
        return [Webhook(secret).verify(r.body, r.headers) for r in self.requests]

    async def wait_for(self, count: int, timeout: float = 20) -> None:
        async def enough() -> None:
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()

        async with asyncio.timeout(timeout):
            await enough()


def receiver_app(receiver: Receiver) -> Starlette:
    async def hook(request: Request) -> Response:
        body = await request.body()
        receiver.requests.append(Received(dict(request.headers), body))
        receiver.arrived.set()
        answer = receiver.script.pop(0) if receiver.script else 200
        if isinstance(answer, float):
            await asyncio.sleep(answer)
            return Response("late")
        if 300 <= answer < 400:
            return Response(status_code=answer, headers={"location": "http://127.0.0.1:1/"})
        return Response("ok" if answer < 300 else "nope", status_code=answer)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with uvicorn_server(receiver_app(receiver)) as url:
        receiver.url = f"{url}/hook"
        yield receiver


def webhook_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_allowed_networks": "127.0.0.0/8",
        "webhook_retry_schedule": "0.2,0.2,0.2",
        "webhook_timeout": 1.0,
    }
    values.update(overrides)
    return engine_settings(database_url, **values)


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def gateway(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway (engine and dispatcher running) and a key with jobs and webhooks scopes."""
    async with lifespan_app(create_app(webhook_settings(database_url))) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            scopes = ["jobs:read", "jobs:write", "webhooks:read", "webhooks:write"]
            client.headers["Authorization"] = f"Bearer {await keys.create(scope=scopes)}"
            yield client
