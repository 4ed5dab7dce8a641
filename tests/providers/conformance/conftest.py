"""Runs every conformance case once per provider harness found in this folder
(`harness_<name>.py` modules defining HARNESS)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from importlib import import_module
from pathlib import Path

import pytest

from providers.base import Provider
from tests.providers.conformance.harness import Harness

_MODULES = sorted(path.stem for path in Path(__file__).parent.glob("harness_*.py"))
HARNESSES: dict[str, type[Harness]] = {
    module.removeprefix("harness_"): import_module(f"{__package__}.{module}").HARNESS
    for module in _MODULES
}


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    instance = HARNESSES[request.param]()
    async with instance.running():
        yield instance


@pytest.fixture
async def adapters(harness: Harness) -> AsyncIterator[Callable[..., Provider]]:
    """Makes adapter instances (`adapters()`, `adapters(unreachable=True)`) and closes them
    all at the end of the test."""
    made: list[Provider] = []

    def make(*, unreachable: bool = False) -> Provider:
        adapter = harness.unreachable_adapter() if unreachable else harness.adapter()
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()
