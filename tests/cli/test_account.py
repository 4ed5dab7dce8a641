"""`cortex account` against a real gateway: limits, what is in use, budget."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.accounts.overrides import set_limits
from tests.cli.conftest import Cortex
from tests.factories import API, job_spec


async def test_account_shows_quotas_in_use_and_the_budget(
    cortex: Cortex, gateway_url: str, api_key: str, db: AsyncEngine
) -> None:
    await set_limits(
        db,
        "alpha",
        rate_limit=20.0,
        rate_burst=40,
        max_active_jobs=5,
        max_engine_slots=2,
        budget_usd=Decimal("10"),
        budget_period="day",
        allowed_providers=["local"],
    )
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}) as http:
        submitted = await http.post(
            f"{gateway_url}{API}/jobs", json=job_spec(command=["sleep", "60"], duration=120)
        )
        assert submitted.status_code == 201, submitted.text

        shown = await cortex("account")
        assert shown.code == 0, shown
        # Two columns, padded with at least two spaces.
        rows = dict(
            re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in shown.stdout.splitlines()
        )
        assert rows["ACCOUNT"] == "alpha"
        assert rows["max_active_jobs"] == "1 / 5"
        assert rows["max_streams_per_key"].startswith("0 / ")
        assert rows["rate limit"] == "20 requests/s per key, bursts of 40"
        assert rows["engine slots"] == "at most 2"
        assert rows["budget"].startswith("10.00 USD per day: ")
        assert rows["budget"].endswith(" left")
        assert rows["providers"] == "local"

        data = json.loads((await cortex("account", "--json")).stdout)
        assert {"name": "max_active_jobs", "limit": 5, "current": 1} in data["quotas"]
        assert data["budget"]["usd"] == 10.0 and data["budget"]["period"] == "day"
        assert data["allowedProviders"] == ["local"]

        await http.post(f"{gateway_url}{API}/jobs/{submitted.json()['data']['id']}/cancel")
