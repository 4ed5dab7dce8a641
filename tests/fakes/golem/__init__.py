"""A fake yagna requestor daemon (market, activity and payment REST APIs) plus the Golem
registry's image lookup, on a real loopback HTTP port.

In a test: `async with running_fake() as fake: ...` (`fake.url`, `fake.yagna` for inspection).
As its own process: `python -m tests.fakes.golem --port 7465` (see `--help`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn

from tests.fakes.golem.app import build_app
from tests.fakes.golem.network import CPU_SEC, DURATION_SEC, FakeYagna, ProviderNode, Timing

APP_KEY = "cortex-fake-app-key"


def image_hash(tag: str) -> str:
    return hashlib.sha3_224(tag.encode()).hexdigest()


IMAGES = {tag: image_hash(tag) for tag in ("cortex/busybox:1", "golem/alpine:latest")}


def default_providers() -> list[ProviderNode]:
    """A small market: the cheapest offer never answers a counter-proposal, one provider is
    on a test network only, one is too small; `steady` is the cheapest that can be had."""
    return [
        ProviderNode(
            "silent-bargain",
            prices={CPU_SEC: 0.000001, DURATION_SEC: 0.000001},
            start_price=0.0,
            answers=False,
        ),
        ProviderNode(
            "steady",
            prices={CPU_SEC: 0.00005, DURATION_SEC: 0.00002},
            start_price=0.001,
        ),
        ProviderNode(
            "premium",
            prices={CPU_SEC: 0.0002, DURATION_SEC: 0.0001},
            start_price=0.01,
            usage_vector=[DURATION_SEC, CPU_SEC],
        ),
        ProviderNode(
            "testnet-only",
            prices={CPU_SEC: 0.0000001, DURATION_SEC: 0.0000001},
            start_price=0.0,
            platforms=["erc20-holesky-tglm", "erc20-hoodi-tglm"],
        ),
        ProviderNode(
            "tiny",
            prices={CPU_SEC: 0.0000005, DURATION_SEC: 0.0000005},
            start_price=0.0,
            threads=1,
            mem_gib=0.25,
            storage_gib=0.5,
        ),
    ]


def new_yagna(
    timing: Timing | None = None, providers: list[ProviderNode] | None = None
) -> FakeYagna:
    return FakeYagna(
        app_key=APP_KEY,
        providers=default_providers() if providers is None else providers,
        images=dict(IMAGES),
        timing=timing,
    )


@dataclass
class RunningFake:
    url: str
    yagna: FakeYagna


@asynccontextmanager
async def running_fake(
    timing: Timing | None = None,
    providers: list[ProviderNode] | None = None,
    port: int = 0,
) -> AsyncIterator[RunningFake]:
    """Serve a fresh fake yagna on a loopback port for the duration."""
    yagna = new_yagna(timing, providers)
    config = uvicorn.Config(
        build_app(yagna),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        # Result streams never end by themselves (yagna keeps pinging): don't wait for them.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningFake(f"http://127.0.0.1:{bound}", yagna)
    finally:
        server.should_exit = True
        await task
