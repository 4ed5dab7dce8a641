"""Runs the gateway for tests: in-process through ASGI, or on a real uvicorn port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send


@asynccontextmanager
async def lifespan_app(app: Starlette) -> AsyncIterator[ASGIApp]:
    """The app with its lifespan entered, as httpx's ASGITransport (which runs no lifespan)
    needs it: each request sees the lifespan's state, as under a server."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        yield with_state


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def uvicorn_server(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` on a loopback port (`port`, or a free one) for the duration; yields its
    base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
