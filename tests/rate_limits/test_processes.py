"""One key's rate holds across gateway processes sharing a database: two real `cortex-gateway
serve` processes, one key flooding both, and another account unaffected.

The stated tolerance (app/rate_limits/limiter.py, docs/operations.md): over T seconds a key
gets at most rate*T + burst + (N-1)*rate*L requests from N processes, L the sync lag (two
sync intervals and a statement: 0.5 s allowed here), once T exceeds (N-1)*burst/rate."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.client.gateway import GatewayProcess
from tests.factories import API, Keys

RATE, BURST, SECONDS, PROCESSES, LAG = 20, 10, 4.0, 2, 0.5
FLOODERS = 8


@pytest.fixture
def gateways(database_url: str, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    try:
        for number in range(PROCESSES):
            gateway = GatewayProcess(
                database_url,
                tmp_path / f"gateway-{number}.log",
                CORTEX_DEFAULT_RATE_LIMIT=str(RATE),
                CORTEX_DEFAULT_RATE_BURST=str(BURST),
                CORTEX_ENGINE_ENABLED="false",
                CORTEX_WEBHOOKS_ENABLED="false",
            )
            gateway.start()
            started.append(gateway)
        yield started
    finally:
        for gateway in started:
            gateway.stop()


async def test_one_key_flooding_two_processes_gets_the_rate_and_others_are_served(
    gateways: list[GatewayProcess], keys: Keys
) -> None:
    flooding = {"Authorization": f"Bearer {await keys.create(account='flood')}"}
    calm = {"Authorization": f"Bearer {await keys.create(account='calm')}"}
    urls = itertools.cycle([f"{gateway.url}{API}/jobs" for gateway in gateways])
    granted: list[int] = []
    refused: list[int] = []
    calm_answers: list[int] = []

    async with httpx.AsyncClient(timeout=30) as http:
        start = time.monotonic()

        async def flood() -> None:
            while time.monotonic() - start < SECONDS:
                answer = await http.get(next(urls), headers=flooding)
                assert answer.status_code in (200, 429), answer.text
                (granted if answer.status_code == 200 else refused).append(1)

        async def stay_calm() -> None:
            # Well within its own rate: 8 requests a second, alternating processes.
            while time.monotonic() - start < SECONDS:
                calm_answers.append((await http.get(next(urls), headers=calm)).status_code)
                await asyncio.sleep(0.125)

        await asyncio.gather(*(flood() for _ in range(FLOODERS)), stay_calm())
        elapsed = time.monotonic() - start

    bound = RATE * elapsed + BURST + (PROCESSES - 1) * RATE * LAG
    print(
        f"\n{len(granted)} granted, {len(refused)} refused in {elapsed:.2f}s "
        f"(rate*T + burst = {RATE * elapsed + BURST:.0f}, tolerance bound {bound:.0f})"
    )
    assert refused, "the flood never reached the limit"
    assert len(granted) <= bound
    # The limit is the shared one, not one per process refusing the key too early.
    assert len(granted) >= RATE * (elapsed - LAG)
    assert calm_answers and set(calm_answers) == {200}
