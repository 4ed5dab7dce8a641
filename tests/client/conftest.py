from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.client.gateway import served
from tests.factories import Keys


@pytest.fixture
async def gateway_url(database_url: str) -> AsyncIterator[str]:
    async with served(database_url) as url:
        yield url


@pytest.fixture
async def api_key(keys: Keys) -> str:
    return await keys.create(account="alpha", scope=("admin",))
