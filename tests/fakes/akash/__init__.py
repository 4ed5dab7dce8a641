"""A fake Akash network on loopback ports: the Console API (plain HTTP) and one provider
gateway (HTTPS with a self-signed certificate, serving the lease log websocket).

In tests: `async with running_fake(api_key="...") as fake:` gives `fake.console_url`,
`fake.network` (state and fault switches) and `fake.console.requests` (counts by route).
Alone: `python -m tests.fakes.akash --port 8790 --api-key ac.sk.test.1234`; inspect it with
`GET /_fake/state`, inject faults with `POST /_fake/faults` (`{"rate_limited": 3}`,
`{"failing": 2}`, `{"withdraw_next_bid": true}`, `{"close_next_order": true}`,
`{"refuse_bids": true}`, `{"drop_create_answers": 1}` (the create is committed, then the
connection dropped), `{"managed_deposits": false}` (a create without `deposit` is refused
"deposit is required"), `{"failing_closes": 2}` (closes answered 500)), make a
provider unreachable with `POST /_fake/providers/{address}` `{"reachable": false}` and end
its running leases with `{"lease_state": "insufficient_funds"}` (or `"reclaiming"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from tests.fakes.akash.console import FakeConsole
from tests.fakes.akash.network import Network
from tests.fakes.akash.provider import FakeProviderGateway


@dataclass
class FakeAkash:
    network: Network
    console: FakeConsole
    console_url: str
    provider_url: str


def self_signed_certificate(directory: Path) -> tuple[str, str]:
    key, cert = directory / "provider.key", directory / "provider.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=provider.fake-akash.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(key), str(cert)


class _Server(uvicorn.Server):
    """Leaves signals to whoever runs the fake, which then closes every deployment (and
    stops the processes it runs) before it exits."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


async def _serve(app: Any, port: int, **ssl: str) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Serve `app` on `port` (0: any free port) and return the port it got."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **ssl
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, task, int(bound)


@asynccontextmanager
async def running_fake(
    *,
    api_key: str = "ac.sk.test." + "0" * 64,
    port: int | None = None,
    provider_port: int | None = None,
    bid_delay: float = 0.3,
    start_delay: float = 0.2,
    bid_spacing: float = 0.0,
) -> AsyncIterator[FakeAkash]:
    network = Network(bid_delay=bid_delay, start_delay=start_delay, bid_spacing=bid_spacing)
    console = FakeConsole(network, api_key)
    with tempfile.TemporaryDirectory(prefix="fake-akash-") as directory:
        key, cert = self_signed_certificate(Path(directory))
        servers = [
            await _serve(
                FakeProviderGateway(network).app,
                provider_port or 0,
                ssl_keyfile=key,
                ssl_certfile=cert,
            ),
            await _serve(console.app, port or 0),
        ]
        provider_url = f"https://127.0.0.1:{servers[0][2]}"
        for provider in network.providers.values():
            provider.host_uri = provider_url
        try:
            yield FakeAkash(network, console, f"http://127.0.0.1:{servers[1][2]}", provider_url)
        finally:
            await network.aclose()
            for server, _, _ in servers:
                server.should_exit = True
            for _, task, _ in servers:
                await task
