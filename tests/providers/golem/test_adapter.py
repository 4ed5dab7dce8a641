"""The Golem adapter against the fake yagna: what the daemon sees and holds at each step."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from providers.conformance import ENDED, Driver
from providers.conformance.suite import new_job_id
from providers.errors import HandleNotFound, ImagePullFailed
from providers.golem import GolemProvider
from providers.golem.work import MAX_HELD_CHARS
from providers.types import FailureReason, WorkloadState
from tests.fakes.golem import RunningFake, running_fake
from tests.providers.conformance.harness_golem import (
    fast_timing,
    golem_adapter,
    script,
    shell_spec,
)


@pytest.fixture
async def fake() -> AsyncIterator[RunningFake]:
    async with running_fake(fast_timing()) as running:
        yield running


@pytest.fixture
async def adapter(fake: RunningFake) -> AsyncIterator[GolemProvider]:
    made = golem_adapter(fake)
    yield made
    await made.aclose()


async def run_to_end(adapter: GolemProvider, spec_script: str, **extra: object) -> Driver:
    driver = Driver(adapter, await adapter.submit(shell_spec(new_job_id(), spec_script, **extra)))
    await driver.until(ENDED, 30, logs=True)
    await driver.drain_logs(timeout=2)
    return driver


class TestPlacement:
    async def test_the_cheapest_provider_that_answers_gets_the_agreement(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        driver = await run_to_end(adapter, "echo hi")
        agreement = fake.yagna.agreements[driver.handle["agreementId"]]
        # silent-bargain is cheaper but never answers; testnet-only is on another payment
        # platform and tiny is too small, so the market never offers them.
        assert agreement.provider.name == "steady"
        offered = {o["name"] for o in driver.handle["offers"].values()}
        assert offered == {"silent-bargain", "steady", "premium"}

    async def test_the_approval_wait_answers_408_until_the_provider_approves(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        await run_to_end(adapter, "true")
        waits = [path for method, path in fake.yagna.requests if path.endswith("/wait")]
        assert len(waits) >= 3  # approval takes 0.3 s; each wait is 0.05 s

    async def test_the_activity_comes_before_the_providers_idle_agreement_timeout(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        """Providers end an approved agreement that has no activity after a while (90 s in
        yagna); the fake's here is half a second."""
        fake.yagna.timing.idle_agreement_seconds = 0.5
        driver = await run_to_end(adapter, "sleep 1; echo ok")
        assert (driver.last.state, driver.last.exit_code) == (WorkloadState.EXITED, 0)  # type: ignore[union-attr]
        agreement = fake.yagna.agreements[driver.handle["agreementId"]]
        assert agreement.terminated_by is None

    async def test_prices_are_read_by_usage_vector_name(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        """premium lists duration before cpu; its worst case must still come out dearest."""
        driver = await run_to_end(adapter, "true")
        offers = {o["name"]: o["glm"] for o in driver.handle["offers"].values()}
        seconds, threads = 300, 1
        assert offers["premium"] == pytest.approx(0.01 + (0.0001 + 0.0002 * threads) * seconds)
        assert offers["steady"] == pytest.approx(0.001 + (0.00002 + 0.00005 * threads) * seconds)

    async def test_answers_to_counters_whose_handle_a_crash_lost_are_still_taken(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        """yagna hands each market event out once: the offers read in a call whose new
        handle was never stored are gone, but the providers' answers still come."""
        handle = await adapter.submit(shell_spec(new_job_id(), "true"))
        countered = await adapter.status(handle)  # the engine dies before storing this
        assert countered.handle is not None and countered.handle["offers"]
        driver = Driver(adapter, handle)
        status = await driver.until(ENDED, 30)
        assert (status.state, status.exit_code) == (WorkloadState.EXITED, 0)
        assert driver.handle["provider"] == "steady"

    async def test_no_acceptable_offer_in_time_fails_with_no_offers(
        self, fake: RunningFake
    ) -> None:
        adapter = golem_adapter(fake, budget=0.000001)
        try:
            driver = Driver(adapter, await adapter.submit(shell_spec(new_job_id(), "true")))
            status = await driver.until(ENDED, 30)
        finally:
            await adapter.aclose()
        assert status.state is WorkloadState.FAILED
        assert status.reason is FailureReason.NO_OFFERS
        assert "CORTEX_GOLEM_BUDGET" in (status.message or "")
        assert fake.yagna.agreements == {}

    async def test_an_image_not_on_the_registry_fails_with_gvmkit_advice(
        self, adapter: GolemProvider
    ) -> None:
        spec = dataclasses.replace(shell_spec(new_job_id(), "true"), image="library/nginx:1")
        with pytest.raises(ImagePullFailed, match="gvmkit-build"):
            await adapter.submit(spec)

    async def test_a_hash_resolves_like_a_tag(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        sha3 = fake.yagna.images["golem/alpine:latest"]
        spec = dataclasses.replace(shell_spec(new_job_id(), "true"), image=f"sha3:{sha3}")
        handle = await adapter.submit(spec)
        assert handle["package"].startswith(f"hash:sha3:{sha3}:")


class TestWork:
    async def test_exit_3_fails_with_code_3_and_every_line_of_both_streams(
        self, adapter: GolemProvider
    ) -> None:
        driver = await run_to_end(
            adapter,
            "echo one; echo two >&2; sleep 0.2; echo three; printf 'no newline'; exit 3",
            env={"GREETING": "hi"},
        )
        status = driver.last
        assert status is not None
        assert (status.state, status.exit_code, status.reason) == (
            WorkloadState.EXITED,
            3,
            FailureReason.EXIT_CODE,
        )
        assert [(line.stream, line.line) for line in driver.lines] == [
            ("stdout", "one"),
            ("stderr", "two"),
            ("stdout", "three"),
            ("stdout", "no newline"),
        ]

    async def test_output_far_over_the_cap_is_held_at_most_the_cap_and_the_rest_marked(
        self, adapter: GolemProvider
    ) -> None:
        line = "0123456789" * 10
        spec = shell_spec(new_job_id(), f"yes {line} | head -c 20000000")  # 20 MB
        driver = Driver(adapter, await adapter.submit(spec))
        await driver.read_logs()
        await driver.until(ENDED, 60)  # no reads meanwhile: the engine fell behind
        held = adapter._followers[driver.handle["batchId"]].held["stdout"]
        assert 0 < len(held.text) <= MAX_HELD_CHARS and held.dropped > 0
        await driver.drain_logs(timeout=30)
        texts = [entry.line for entry in driver.lines]
        marked = [text for text in texts if "bytes of output dropped" in text]
        assert len(marked) == 1 and f"at most {MAX_HELD_CHARS} at a time" in marked[0]
        # Whole lines, but for the one the cap cut and the one head -c cut.
        cut = [text for text in set(texts) - set(marked) if text != line]
        assert len(cut) <= 2 and all(line.startswith(text) for text in cut)
        assert held.text == "" and held.dropped == 0

    async def test_without_streamed_results_long_polling_brings_the_code_and_every_line(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        fake.yagna.streams_results = False
        driver = await run_to_end(adapter, "echo a; echo b >&2; exit 7")
        assert (driver.last.exit_code, driver.last.reason) == (7, FailureReason.EXIT_CODE)  # type: ignore[union-attr]
        assert [line.line for line in driver.lines] == ["a", "b"]

    async def test_env_reaches_the_command_through_deploy(self, adapter: GolemProvider) -> None:
        driver = await run_to_end(adapter, 'echo "$GREETING world"', env={"GREETING": "hello"})
        assert [line.line for line in driver.lines] == ["hello world"]

    async def test_the_exescript_is_deploy_start_run_as_a_text_body(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        driver = await run_to_end(adapter, "true")
        activity = fake.yagna.activities[driver.handle["activityId"]]
        batch = activity.batches[driver.handle["batchId"]]
        assert [next(iter(command)) for command in batch.commands] == ["deploy", "start", "run"]
        run = batch.commands[2]["run"]
        assert run["entry_point"] == "/bin/sh"
        assert set(run["capture"]) == {"stdout", "stderr"}

    async def test_lines_arrive_while_the_command_runs(self, adapter: GolemProvider) -> None:
        spec = shell_spec(new_job_id(), script(["first", "second"], 0, pause=2.0))
        driver = Driver(adapter, await adapter.submit(spec))
        while not driver.lines:
            status = await driver.step()
            await driver.read_logs()
            assert status.state not in ENDED, "the first line came only at the end"
            await adapter.watch(driver.handle, 0.2)
        assert [line.line for line in driver.lines] == ["first"]
        await driver.until(ENDED, 30, logs=True)

    async def test_cost_comes_from_the_agreed_prices_and_usage(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        driver = await run_to_end(adapter, "sleep 0.5")
        activity = fake.yagna.activities[driver.handle["activityId"]]
        expected = activity.agreement.provider.cost(activity.usage())
        assert driver.handle["costGlm"] == pytest.approx(expected, rel=0.05)


class TestPrice:
    async def test_the_quote_is_the_budget_over_the_duration_in_glm_and_usd(
        self, adapter: GolemProvider
    ) -> None:
        quote = await adapter.quote(shell_spec(new_job_id(), "true", duration_seconds=1800))
        assert quote.native is not None
        assert (quote.native.denom, quote.native.unit) == ("GLM", "hour")
        assert float(quote.native.amount) == pytest.approx(2.0)  # 1 GLM over half an hour
        assert quote.usd_per_hour == pytest.approx(2.0 * 0.2)

    async def test_the_agreed_price_is_reported_once_when_the_provider_approves(
        self, adapter: GolemProvider
    ) -> None:
        driver = Driver(adapter, await adapter.submit(shell_spec(new_job_id(), "sleep 1")))
        prices = []
        while driver.last is None or driver.last.state not in ENDED:
            status = await driver.step()
            if status.price is not None:
                prices.append((status.price, driver.handle["phase"]))
            await adapter.watch(driver.handle, 0.1)
        assert len(prices) == 1
        price, phase = prices[0]
        assert phase == "activating"
        assert price.native is not None and price.native.denom == "GLM"
        hourly = driver.handle["estimateGlm"] * 3600 / 300
        assert float(price.native.amount) == pytest.approx(hourly)
        assert price.usd_per_hour == pytest.approx(hourly * 0.2)


class TestPayment:
    async def test_debit_notes_are_accepted_in_time_and_the_job_runs_to_its_end(
        self, fake: RunningFake
    ) -> None:
        # A provider that wants each note accepted within a second, sending one every 0.3 s.
        fake.yagna.timing.debit_note_interval = 0.3
        for provider in fake.yagna.providers:
            provider.max_accept_timeout = 1.0
        adapter = golem_adapter(fake)
        try:
            driver = await run_to_end(adapter, "sleep 2.5; echo done")
            await adapter.release(driver.handle)
        finally:
            await adapter.aclose()
        assert (driver.last.state, driver.last.exit_code) == (WorkloadState.EXITED, 0)  # type: ignore[union-attr]
        notes = [n for n in fake.yagna.debit_notes.values() if n["activityId"]]
        assert len(notes) >= 5
        assert {n["status"] for n in notes} == {"ACCEPTED"}
        invoices = list(fake.yagna.invoices.values())
        assert [i["status"] for i in invoices] == ["ACCEPTED"]
        allocation = fake.yagna.allocations[driver.handle["allocationId"]]
        assert allocation["spentAmount"] == invoices[0]["amount"]

    async def test_a_debit_note_left_unaccepted_ends_the_agreement(self, fake: RunningFake) -> None:
        """The fake's side of the rule the test above relies on (without a requestor that
        pays, the provider stops the work)."""
        yagna = fake.yagna
        yagna.timing.debit_note_interval = 0.2
        provider = yagna.provider_named("steady")
        provider.max_accept_timeout = 0.3
        headers = {"Authorization": f"Bearer {yagna.app_key}"}
        async with httpx.AsyncClient(base_url=fake.url, headers=headers) as client:
            activity_id = await _activity_without_payments(client, fake)
            agreement = yagna.activities[activity_id].agreement
            while agreement.state != "Terminated":
                await _pause()
        assert agreement.terminated_by == "Provider"
        assert agreement.reason == "Requestor didn't accept DebitNote in time"
        assert yagna.activities[activity_id].state == "Terminated"


class TestTrouble:
    async def test_a_provider_that_vanishes_mid_run_is_lost_and_release_cleans_up(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        job_id = new_job_id()
        driver = Driver(adapter, await adapter.submit(shell_spec(job_id, "sleep 600")))
        await driver.until((WorkloadState.RUNNING,), 30)
        async with httpx.AsyncClient(base_url=fake.url) as client:
            await client.post(f"/_fake/providers/{driver.handle['provider']}/vanish")
        with pytest.raises(HandleNotFound, match="left the network"):
            await driver.until(ENDED, 30)
        await adapter.cancel(driver.handle)
        await adapter.release(driver.handle)
        assert fake.yagna.held(job_id) == []
        assert driver.handle["allocationId"] in fake.yagna.released

    async def test_a_provider_that_ends_the_agreement_mid_run_fails_the_job_saying_why(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        job_id = new_job_id()
        driver = Driver(adapter, await adapter.submit(shell_spec(job_id, "sleep 600")))
        await driver.until((WorkloadState.RUNNING,), 30)
        async with httpx.AsyncClient(base_url=fake.url) as client:
            await client.post(
                f"/_fake/providers/{driver.handle['provider']}/terminate",
                json={"reason": "Requestor didn't accept DebitNote in time"},
            )
        status = await driver.until(ENDED, 30)
        assert (status.state, status.reason) == (WorkloadState.FAILED, FailureReason.PROVIDER_ERROR)
        assert "Requestor didn't accept DebitNote in time" in (status.message or "")
        await adapter.release(driver.handle)
        assert fake.yagna.held(job_id) == []
        assert [i["status"] for i in fake.yagna.invoices.values()] == ["ACCEPTED"]

    async def test_terminating_twice_answers_410_and_release_takes_it_as_done(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        driver = await run_to_end(adapter, "true")
        await adapter.release(driver.handle)
        headers = {"Authorization": f"Bearer {fake.yagna.app_key}"}
        async with httpx.AsyncClient(base_url=fake.url, headers=headers) as client:
            again = await client.post(
                f"/market-api/v1/agreements/{driver.handle['agreementId']}/terminate",
                json={"message": "again"},
            )
        assert again.status_code == 410
        assert "Terminated to Terminated" in again.json()["message"]
        await adapter.release(driver.handle)  # still fine

    async def test_cancel_leaves_no_activity_agreement_demand_or_allocation_open(
        self, fake: RunningFake, adapter: GolemProvider
    ) -> None:
        driver = Driver(adapter, await adapter.submit(shell_spec(new_job_id(), "sleep 600")))
        await driver.until((WorkloadState.RUNNING,), 30)
        await adapter.cancel(driver.handle)
        await adapter.release(driver.handle)
        yagna, handle = fake.yagna, driver.handle
        assert yagna.activities[handle["activityId"]].state == "Terminated"
        assert yagna.agreements[handle["agreementId"]].state == "Terminated"
        assert not yagna.demands[handle["demandId"]].active
        assert handle["allocationId"] in yagna.released
        assert [i["status"] for i in yagna.invoices.values()] == ["ACCEPTED"]


class TestNotConfigured:
    async def test_without_an_app_key_it_is_not_configured(self, fake: RunningFake) -> None:
        adapter = golem_adapter(fake, app_key=None)
        try:
            health = await adapter.health()
        finally:
            await adapter.aclose()
        assert (health.healthy, health.configured) == (False, False)
        assert "CORTEX_GOLEM_APP_KEY" in (health.reason or "")

    async def test_a_network_without_a_funded_account_is_unhealthy(self, fake: RunningFake) -> None:
        adapter = golem_adapter(fake, payment_network="sepolia")
        try:
            health = await adapter.health()
        finally:
            await adapter.aclose()
        assert not health.healthy
        assert "yagna payment init --sender --network sepolia" in (health.reason or "")


async def _pause() -> None:
    await asyncio.sleep(0.05)


async def _activity_without_payments(client: httpx.AsyncClient, fake: RunningFake) -> str:
    """Demand -> counter -> agreement -> activity by hand, accepting nothing."""
    allocation = (
        await client.post(
            "/payment-api/v1/allocations",
            json={"totalAmount": "1", "paymentPlatform": "erc20-polygon-glm"},
        )
    ).json()
    decorations = (
        await client.get(
            "/payment-api/v1/demandDecorations",
            params={"allocationIds": allocation["allocationId"]},
        )
    ).json()
    properties = {d["key"]: d["value"] for d in decorations["properties"]}
    properties.update(
        {
            "golem.srv.comp.task_package": f"hash:sha3:{fake.yagna.images['cortex/busybox:1']}:x",
            "golem.srv.comp.expiration": int((time.time() + 900) * 1000),
            "golem.com.payment.debit-notes.accept-timeout?": 120,
        }
    )
    demand = {"properties": properties, "constraints": "(golem.node.id.name=steady)"}
    subscription = (await client.post("/market-api/v1/demands", json=demand)).json()
    events = (await client.get(f"/market-api/v1/demands/{subscription}/events")).json()
    offer = events[0]["proposal"]["proposalId"]
    refused = await client.post(
        "/market-api/v1/agreements", json={"proposalId": offer, "validTo": "2100-01-01T00:00:00Z"}
    )
    assert refused.status_code == 409  # an Initial proposal: negotiate first
    ours = (
        await client.post(f"/market-api/v1/demands/{subscription}/proposals/{offer}", json=demand)
    ).json()
    draft = None
    while draft is None:
        for event in (await client.get(f"/market-api/v1/demands/{subscription}/events")).json():
            if event["proposal"].get("prevProposalId") == ours:
                draft = event["proposal"]["proposalId"]
    agreement = (
        await client.post(
            "/market-api/v1/agreements",
            json={"proposalId": draft, "validTo": "2100-01-01T00:00:00Z"},
        )
    ).json()
    await client.post(f"/market-api/v1/agreements/{agreement}/confirm")
    while (
        await client.post(f"/market-api/v1/agreements/{agreement}/wait?timeout=1")
    ).status_code != 204:
        pass
    created = await client.post("/activity-api/v1/activity", json={"agreementId": agreement})
    return str(created.json()["activityId"])
