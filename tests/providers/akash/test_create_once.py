"""Exactly one Akash deployment per job: a create whose answer is lost is found, never
repeated, and `deposit` goes with the create when the account needs one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.application import create_app
from providers.akash.adapter import AkashProvider
from providers.errors import Rejected, Unavailable
from providers.types import WorkloadState
from tests.engine.conftest import submit, wait_for
from tests.factories import Keys
from tests.fakes.akash import FakeAkash, running_fake
from tests.providers.akash.test_adapter import drive, spec
from tests.providers.akash.test_jobs import akash_job, akash_settings
from tests.providers.conformance.harness_akash import API_KEY, akash_options
from tests.servers import lifespan_app


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkash]:
    async with running_fake(api_key=API_KEY, bid_delay=0.2, start_delay=0.1) as running:
        yield running


def active(fake: FakeAkash, job_id: str) -> list[str]:
    return [
        d.dseq
        for d in fake.network.deployments.values()
        if d.job_id == job_id and d.state == "active"
    ]


class TestLostCreate:
    async def test_a_create_whose_answer_is_dropped_is_found_not_repeated(
        self, fake: FakeAkash
    ) -> None:
        fake.network.drop_create_answers = 1
        adapter = AkashProvider(**akash_options(fake.console_url))  # type: ignore[arg-type]
        try:
            handle = await adapter.submit(spec())
            assert active(fake, "job_0123456789ab") == [handle["dseq"]]
            assert fake.console.requests["POST /v1/deployments"] == 1
            status, handle, _ = await drive(adapter, handle, {WorkloadState.RUNNING})
            assert status.state is WorkloadState.RUNNING
            await adapter.release(handle)
        finally:
            await adapter.aclose()
        assert fake.network.held("job_0123456789ab") == []

    async def test_a_5xx_to_the_create_is_never_retried_blindly(self, fake: FakeAkash) -> None:
        # A long poll interval: the listing made by the first submit serves the second.
        options = {**akash_options(fake.console_url), "poll_interval": 60.0}
        adapter = AkashProvider(**options)  # type: ignore[arg-type]
        try:
            await adapter.submit(spec(job_id="job_warmthelisting"))
            fake.network.failing = 1  # the create's answer: a 503 (done or not, unknown)
            with pytest.raises(Unavailable, match="lost its answer"):
                await adapter.submit(spec())
            # Until the lost create could have shown, the job waits rather than creating.
            with pytest.raises(Unavailable, match="waiting to see"):
                await adapter.submit(spec())
        finally:
            await adapter.aclose()
        assert fake.console.requests["POST /v1/deployments"] == 2
        assert active(fake, "job_0123456789ab") == []

    async def test_through_the_gateway_a_dropped_answer_leaves_one_deployment_and_the_job_runs(
        self, database_url: str, keys: Keys, fake: FakeAkash
    ) -> None:
        fake.network.drop_create_answers = 1
        settings = akash_settings(database_url, fake.console_url)
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create()}"
                job_id = await submit(client, akash_job("echo once; sleep 0.5"))
                job = await wait_for(client, job_id)
        assert job["status"] == "completed", job
        assert len([d for d in fake.network.deployments.values() if d.job_id == job_id]) == 1
        assert fake.network.drop_create_answers == 0


class TestDeposit:
    async def test_without_managed_deposits_a_missing_deposit_is_refused_naming_the_setting(
        self, fake: FakeAkash
    ) -> None:
        fake.network.managed_deposits = False
        adapter = AkashProvider(**akash_options(fake.console_url))  # type: ignore[arg-type]
        try:
            with pytest.raises(Rejected, match="CORTEX_AKASH_DEPOSIT_USD"):
                await adapter.submit(spec())
        finally:
            await adapter.aclose()
        assert not fake.network.deployments

    async def test_the_configured_deposit_is_sent(self, fake: FakeAkash) -> None:
        fake.network.managed_deposits = False
        options = {**akash_options(fake.console_url), "deposit_usd": 5.0}
        adapter = AkashProvider(**options)  # type: ignore[arg-type]
        try:
            handle = await adapter.submit(spec())
            await adapter.release(handle)
        finally:
            await adapter.aclose()
        assert fake.network.deposits == {handle["dseq"]: 5.0}

    def test_the_deposit_is_read_from_cortex_akash_deposit_usd(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from app.settings import Settings

        monkeypatch.setenv("CORTEX_AKASH_DEPOSIT_USD", "2.5")
        assert Settings().provider_options("akash")["deposit_usd"] == 2.5
