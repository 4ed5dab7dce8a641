"""The provider contract, checked the same way for every network: the conformance suite.

A plugin's own tests run it against their adapter by naming a harness (see `harness.py`):

    # tests/test_conformance.py of the plugin's package
    from providers.conformance import Harness
    from providers.conformance.suite import ProviderConformance

    class AcmeHarness(Harness): ...

    class TestAcmeConformance(ProviderConformance):
        harness_class = AcmeHarness

The cases are async: run them with pytest-asyncio in auto mode (`asyncio_mode = "auto"`).
This module imports pytest, so nothing outside tests imports it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import ClassVar

import pytest

from providers.base import Provider
from providers.conformance.harness import ENDED, WAITING, Driver, Harness
from providers.errors import HandleNotFound, Unavailable
from providers.types import FailureReason, Handle, WorkloadState

Adapters = Callable[..., Provider]


def new_job_id() -> str:
    return f"job_{secrets.token_hex(6)}"


def json_safe(handle: Handle) -> Handle:
    """The engine stores handles as JSON; what comes back must work the same."""
    copy: Handle = json.loads(json.dumps(handle))
    assert copy == handle
    return copy


class _Fixtures:
    """The fixtures every case takes, built from the subclass's `harness_class`."""

    harness_class: ClassVar[type[Harness]]

    @pytest.fixture
    async def harness(self) -> AsyncIterator[Harness]:
        instance = self.harness_class()
        async with instance.running():
            yield instance

    @pytest.fixture
    async def adapters(self, harness: Harness) -> AsyncIterator[Adapters]:
        """Makes adapter instances (`adapters()`, `adapters(unreachable=True)`) and closes
        them all at the end of the test."""
        made: list[Provider] = []

        def make(*, unreachable: bool = False) -> Provider:
            adapter = harness.unreachable_adapter() if unreachable else harness.adapter()
            made.append(adapter)
            return adapter

        yield make
        for adapter in made:
            await adapter.aclose()

    @pytest.fixture
    async def started(self, adapters: Adapters) -> AsyncIterator[list[Handle]]:
        """Handles the test started; whatever they hold is released at the end."""
        handles: list[Handle] = []
        yield handles
        cleaner = adapters()
        for handle in handles:
            with contextlib.suppress(HandleNotFound):
                await cleaner.cancel(handle)
            await cleaner.release(handle)


class SubmitCases(_Fixtures):
    @pytest.mark.parametrize("exit_code", [0, 3])
    async def test_a_job_runs_until_it_exits_with_its_code(
        self, harness: Harness, adapters: Adapters, started: list[Handle], exit_code: int
    ) -> None:
        adapter = adapters()
        spec = harness.printing(new_job_id(), ["hello"], exit_code)
        handle = json_safe(await adapter.submit(spec))
        started.append(handle)
        driver = Driver(adapter, handle)
        status = await driver.until(ENDED, harness.finish_within)
        started.append(json_safe(driver.handle))
        # A waiting message (the job's statusMessage) only describes a wait.
        waiting = [(s.state, s.waiting) for s in driver.seen if s.waiting is not None]
        assert all(state in WAITING for state, _ in waiting), waiting
        assert status.reason is (FailureReason.EXIT_CODE if exit_code else None)
        if exit_code and not harness.exit_codes:
            assert status.state is WorkloadState.FAILED, status
            return
        assert status.state is WorkloadState.EXITED, status
        assert status.exit_code == exit_code

    async def test_a_restarted_adapter_carries_on_from_the_handle(
        self, harness: Harness, adapters: Adapters, started: list[Handle]
    ) -> None:
        job_id = new_job_id()
        first = adapters()
        handle = json_safe(await first.submit(harness.printing(job_id, ["once"], 0)))
        started.append(handle)
        await first.aclose()

        driver = Driver(adapters(), handle)
        status = await driver.until(ENDED, harness.finish_within)
        started.append(driver.handle)
        assert (status.state, status.exit_code) == (WorkloadState.EXITED, 0)

    async def test_submitting_again_after_a_crash_holds_one_workload(
        self, harness: Harness, adapters: Adapters, started: list[Handle]
    ) -> None:
        """The engine may die after submit() and before it stored the handle; the next
        engine submits the same job again and must not start a second workload."""
        job_id = new_job_id()
        spec = harness.long_running(job_id)
        first = await adapters().submit(spec)
        started.append(first)
        held_once = await harness.held(job_id)
        assert held_once

        second = await adapters().submit(spec)
        started.append(second)
        assert sorted(await harness.held(job_id)) == sorted(held_once)


class LogsCases(_Fixtures):
    async def test_every_line_arrives_once_and_in_order_across_a_restart(
        self, harness: Harness, adapters: Adapters, started: list[Handle]
    ) -> None:
        lines = [f"line {index:02d} of the log" for index in range(12)]
        spec = harness.printing(new_job_id(), lines, 0, pause=0.25)
        first = adapters()
        handle = await first.submit(spec)
        started.append(handle)

        before = Driver(first, handle)
        while len(before.lines) < 3:
            status = await before.step()
            await before.read_logs()
            if status.state in ENDED:
                break
            await first.watch(before.handle, 0.2)
        await first.aclose()

        after = Driver(adapters(), json_safe(before.handle), before.cursor)
        await after.until(ENDED, harness.finish_within, logs=True)
        started.append(after.handle)
        await after.drain_logs()
        assert [entry.line for entry in before.lines + after.lines] == lines

    async def test_a_job_that_printed_nothing_has_no_lines(
        self, harness: Harness, adapters: Adapters, started: list[Handle]
    ) -> None:
        adapter = adapters()
        handle = await adapter.submit(harness.printing(new_job_id(), [], 0))
        started.append(handle)
        driver = Driver(adapter, handle)
        await driver.until(ENDED, harness.finish_within, logs=True)
        started.append(driver.handle)
        await driver.drain_logs(timeout=2.0)
        assert driver.lines == []


class CancelCases(_Fixtures):
    async def test_cancel_and_release_of_a_running_job_leave_nothing_held(
        self, harness: Harness, adapters: Adapters
    ) -> None:
        job_id = new_job_id()
        adapter = adapters()
        driver = Driver(adapter, await adapter.submit(harness.long_running(job_id)))
        await driver.until((WorkloadState.RUNNING,), harness.finish_within)
        assert await harness.held(job_id)

        await adapter.cancel(driver.handle)
        await adapter.release(driver.handle)
        assert await harness.held(job_id) == []

        # Both are idempotent: the engine repeats them after a crash.
        with contextlib.suppress(HandleNotFound):
            await adapter.cancel(driver.handle)
        await adapter.release(driver.handle)
        await adapters().release(driver.handle)
        assert await harness.held(job_id) == []

    async def test_cancel_before_it_runs_leaves_nothing_held(
        self, harness: Harness, adapters: Adapters
    ) -> None:
        job_id = new_job_id()
        adapter = adapters()
        handle = await adapter.submit(harness.long_running(job_id))
        await adapter.cancel(handle)
        await adapter.release(handle)
        assert await harness.held(job_id) == []


class HealthAndQuoteCases(_Fixtures):
    async def test_a_reachable_network_is_healthy(self, adapters: Adapters) -> None:
        health = await adapters().health()
        assert health.healthy, health.reason

    async def test_an_unreachable_network_is_unhealthy_with_a_reason(
        self, adapters: Adapters
    ) -> None:
        health = await adapters(unreachable=True).health()
        assert not health.healthy
        assert health.reason

    async def test_a_quote_prices_the_spec_in_usd(
        self, harness: Harness, adapters: Adapters
    ) -> None:
        quote = await adapters().quote(harness.printing(new_job_id(), ["x"], 0))
        assert isinstance(quote.usd_per_hour, float)
        assert quote.usd_per_hour >= 0


class ErrorsCases(_Fixtures):
    async def test_submitting_to_an_unreachable_network_is_unavailable(
        self, harness: Harness, adapters: Adapters
    ) -> None:
        with pytest.raises(Unavailable):
            await adapters(unreachable=True).submit(harness.printing(new_job_id(), ["x"], 0))

    async def test_an_unreachable_network_makes_status_unavailable(
        self, harness: Harness, adapters: Adapters
    ) -> None:
        with pytest.raises(Unavailable):
            await adapters(unreachable=True).status(harness.unknown_handle())

    async def test_an_unknown_handle_is_not_found(
        self, harness: Harness, adapters: Adapters
    ) -> None:
        with pytest.raises(HandleNotFound):
            await adapters().status(harness.unknown_handle())

    async def test_releasing_an_unknown_handle_is_harmless(
        self, harness: Harness, adapters: Adapters
    ) -> None:
        await adapters().release(harness.unknown_handle())


class CheckCases(_Fixtures):
    async def test_a_spec_it_can_run_has_no_refusals(
        self, harness: Harness, adapters: Adapters
    ) -> None:
        adapter = adapters()
        assert adapter.check(harness.printing(new_job_id(), ["x"], 0)) == []
        assert adapter.check(harness.long_running(new_job_id())) == []

    async def test_what_it_cannot_run_is_refused_naming_the_field(
        self, harness: Harness, adapters: Adapters
    ) -> None:
        adapter = adapters()
        refused = harness.refused(new_job_id())
        assert refused, "a harness lists at least one spec its provider refuses"
        for spec, field in refused:
            refusals = adapter.check(spec)
            assert field in [refusal.field for refusal in refusals], (field, refusals)
            assert all(refusal.message for refusal in refusals)


class ProviderConformance(
    SubmitCases, LogsCases, CancelCases, HealthAndQuoteCases, ErrorsCases, CheckCases
):
    """Every case; subclass it as `Test<Name>Conformance` with `harness_class` set."""
