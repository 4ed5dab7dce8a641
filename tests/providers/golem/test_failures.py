"""Golem failure paths through the gateway, against the fake yagna: the provider ends the
agreement mid-run, its ExeUnit fails to deploy or start the image, it rejects the agreement.
Each job ends with a clear reason (or moves on to the next offer) and the daemon holds
nothing for it afterwards: activity destroyed, agreement ended, invoice accepted,
allocation released."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.engine.conftest import submit, wait_for
from tests.factories import Keys
from tests.fakes.golem import RunningFake, running_fake
from tests.providers.conformance.harness_golem import fast_timing
from tests.providers.golem.test_jobs import _gateway, golem_job, until_released


@pytest.fixture
async def fake() -> AsyncIterator[RunningFake]:
    async with running_fake(fast_timing()) as running:
        yield running


@pytest.fixture
async def gateway(
    database_url: str, keys: Keys, fake: RunningFake
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _gateway(database_url, keys, fake):
        yield client


async def behave(fake: RunningFake, name: str, **how: Any) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as client:
        response = await client.post(f"/_fake/providers/{name}", json=how)
        assert response.status_code == 200, response.text


def events(job: dict[str, Any]) -> list[str]:
    return [str(event["message"]) for event in job["events"]]


def assert_nothing_owed(fake: RunningFake, job_id: str) -> None:
    """Every agreement the job had is ended and its invoice accepted; its allocation is
    released (until_released has checked the demand, activities and agreements)."""
    yagna = fake.yagna
    demands = [d for d in yagna.demands.values() if d.properties.get("cortex.job") == job_id]
    allocations = {d.properties.get("cortex.allocation") for d in demands}
    assert allocations and allocations <= yagna.released
    agreements = [a for a in yagna.agreements.values() if a.demand in demands]
    assert agreements
    for agreement in agreements:
        assert agreement.state in ("Terminated", "Rejected", "Cancelled"), agreement.state
    invoices = [
        i for i in yagna.invoices.values() if i["agreementId"] in {a.id for a in agreements}
    ]
    assert invoices and {i["status"] for i in invoices} == {"ACCEPTED"}, invoices


class TestAgreementEnded:
    async def test_the_provider_ending_the_agreement_mid_run_fails_the_job_saying_why(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        job_id = await submit(gateway, golem_job("echo here; sleep 600"))
        await wait_for(gateway, job_id, {"running"}, timeout=60)
        await fake.yagna.terminate_as_provider(
            fake.yagna.provider_named("steady"), "Provider is shutting down"
        )
        job = await wait_for(gateway, job_id, timeout=60)
        assert (job["status"], job["results"]["reason"]) == ("failed", "provider_error")
        assert "Provider is shutting down" in job["results"]["message"], job["results"]
        await until_released(fake, job_id)
        assert_nothing_owed(fake, job_id)


class TestActivityFails:
    async def test_a_deploy_the_provider_fails_fails_the_job_with_its_message(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        await behave(fake, "steady", deployError="Deploy failed: no space left on device")
        job_id = await submit(gateway, golem_job("echo never"))
        job = await wait_for(gateway, job_id, timeout=60)
        assert (job["status"], job["results"]["reason"]) == ("failed", "image_pull")
        assert "no space left on device" in job["results"]["message"], job["results"]
        await until_released(fake, job_id)
        assert_nothing_owed(fake, job_id)
        assert set(fake.yagna.summary()["activities"].values()) == {"Terminated"}

    async def test_a_start_the_provider_fails_fails_the_job_as_a_provider_error(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        await behave(fake, "steady", startError="Start failed: VM did not boot")
        job_id = await submit(gateway, golem_job("echo never"))
        job = await wait_for(gateway, job_id, timeout=60)
        assert (job["status"], job["results"]["reason"]) == ("failed", "provider_error")
        assert "VM did not boot" in job["results"]["message"], job["results"]
        await until_released(fake, job_id)
        assert_nothing_owed(fake, job_id)


class TestAgreementRefused:
    async def test_a_rejected_agreement_moves_on_to_the_next_offer(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        await behave(fake, "steady", approves=False)
        job_id = await submit(gateway, golem_job("echo elsewhere"))
        job = await wait_for(gateway, job_id, timeout=60)
        assert job["status"] == "completed", events(job)
        timeline = events(job)
        assert any("steady did not approve" in line for line in timeline), timeline
        assert any("Agreement approved by premium" in line for line in timeline), timeline
        # The agreement ends with the release, which follows the job's end.
        await until_released(fake, job_id)
        states = {a.provider.name: a.state for a in fake.yagna.agreements.values()}
        assert states == {"steady": "Rejected", "premium": "Terminated"}
        assert_nothing_owed(fake, job_id)

    async def test_when_every_provider_rejects_the_job_fails_with_no_offers(
        self, gateway: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        await behave(fake, "steady", approves=False)
        await behave(fake, "premium", approves=False)
        job_id = await submit(gateway, golem_job("echo never"))
        job = await wait_for(gateway, job_id, timeout=60)
        assert (job["status"], job["results"]["reason"]) == ("failed", "no_offers")
        assert job["startedAt"] is None
        await until_released(fake, job_id)
        yagna = fake.yagna
        assert {a.state for a in yagna.agreements.values()} == {"Rejected"}
        demands = [d for d in yagna.demands.values() if d.properties.get("cortex.job") == job_id]
        assert {d.properties.get("cortex.allocation") for d in demands} <= yagna.released
        assert not yagna.invoices
