"""`client.account.get()`: the key's account as GET /account shows it, on a real gateway."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from cortex_client import Account, AsyncClient, Client
from tests.accounts.overrides import set_limits

SLEEPER = {
    "provider": "local",
    "image": "busybox:latest",
    "cpu": 250,
    "memory": "32Mi",
    "storage": "1Gi",
    "duration": 120,
    "command": ["sleep", "60"],
}


async def test_the_account_shows_limits_use_and_budget(
    gateway_url: str, api_key: str, db: AsyncEngine
) -> None:
    await set_limits(
        db,
        "alpha",
        rate_limit=20.0,
        max_active_jobs=5,
        max_templates=0,
        budget_usd=Decimal("12.5"),
        budget_period="month",
        allowed_providers=["local", "akash"],
    )
    async with AsyncClient(url=gateway_url, api_key=api_key) as cortex:
        job = await cortex.jobs.submit(SLEEPER)
        account = await cortex.account.get()
        await cortex.jobs.cancel(job.id)

    assert isinstance(account, Account) and account.name == "alpha"
    assert account.rate_limit.requests_per_second == 20.0
    quotas = {q.name: (q.current, q.limit) for q in account.quotas}
    assert quotas["max_active_jobs"] == (1, 5)
    assert quotas["max_templates"] == (0, None)  # 0: unlimited
    assert quotas["max_jobs_per_batch"][0] is None
    assert account.budget is not None
    assert (account.budget.usd, account.budget.period) == (12.5, "month")
    assert account.budget.spent + account.budget.left == 12.5
    assert account.allowed_providers == ["akash", "local"]


async def test_the_sync_client_reads_the_account_without_a_budget(
    gateway_url: str, api_key: str
) -> None:
    def read() -> Account:
        with Client(url=gateway_url, api_key=api_key) as cortex:
            return cortex.account.get()

    # In a thread: the gateway serves from this test's event loop.
    account = await asyncio.to_thread(read)
    assert account.budget is None and account.allowed_providers is None
    assert account.model_dump(by_alias=True)["rateLimit"].keys() == {
        "requestsPerSecond",
        "burst",
    }
