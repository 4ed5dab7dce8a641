"""The Akash adapter against the fake Console API: SDL, bids, leases, faults, polling."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest
import yaml

from providers.akash import AkashProvider, sdl
from providers.errors import NotConfigured, Unavailable
from providers.types import (
    FailureReason,
    GpuSpec,
    Handle,
    PortSpec,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)
from tests.fakes.akash import FakeAkash, running_fake
from tests.providers.conformance.harness_akash import API_KEY, akash_options

# The manifest chain-sdk makes of its "Basic SDL" (ts/src/sdl/manifest/__snapshots__/
# generateManifestVersion.spec.ts.snap in akash-network/chain-sdk), and its version's first bytes.
CHAIN_SDK_BASIC_SDL = """
version: '2.0'
services:
  tetris:
    image: bsord/tetris
    expose:
      - port: 80
        as: 80
        to:
          - global: true
profiles:
  compute:
    tetris:
      resources:
        cpu: {units: 1}
        memory: {size: 512Mi}
        storage: [{size: 512Mi}]
  placement:
    akash:
      attributes: {host: akash}
      pricing:
        tetris: {denom: uakt, amount: 10000}
deployment:
  tetris:
    akash: {profile: tetris, count: 1}
"""
CHAIN_SDK_BASIC_MANIFEST = (
    '[{"name":"akash","services":[{"args":null,"command":null,"count":1,"credentials":null,'
    '"env":null,"expose":[{"endpointSequenceNumber":0,"externalPort":80,"global":true,'
    '"hosts":null,"httpOptions":{"maxBodySize":1048576,"nextCases":["error","timeout"],'
    '"nextTimeout":0,"nextTries":3,"readTimeout":60000,"sendTimeout":60000},"ip":"",'
    '"port":80,"proto":"TCP","service":""}],"image":"bsord/tetris","name":"tetris",'
    '"resources":{"cpu":{"units":{"val":"1000"}},"endpoints":[{"sequence_number":0}],'
    '"gpu":{"units":{"val":"0"}},"id":1,"memory":{"size":{"val":"536870912"}},'
    '"storage":[{"name":"default","size":{"val":"536870912"}}]}}]}]'
)


def spec(job_id: str = "job_0123456789ab", **changes: object) -> WorkloadSpec:
    base = WorkloadSpec(
        job_id=job_id,
        image="ghcr.io/acme/web:1.2",
        cpu_millicores=500,
        memory_bytes=512 * 2**20,
        storage_bytes=2**30,
        duration_seconds=600,
        env={"MODE": "prod"},
        ports=(PortSpec(8080, expose=True), PortSpec(9000, expose=True), PortSpec(7000)),
        command=("sh", "-c", "echo ready; sleep 600"),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkash]:
    async with running_fake(api_key=API_KEY, bid_delay=0.2, start_delay=0.1) as running:
        yield running


@pytest.fixture
async def adapter(fake: FakeAkash) -> AsyncIterator[AkashProvider]:
    provider = AkashProvider(**akash_options(fake.console_url))  # type: ignore[arg-type]
    yield provider
    await provider.aclose()


async def drive(
    adapter: AkashProvider, handle: Handle, until: set[WorkloadState], timeout: float = 15
) -> tuple[WorkloadStatus, Handle, list[str]]:
    notes: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        status = await adapter.status(handle)
        handle = status.handle or handle
        notes += status.notes
        if status.state in until:
            return status, handle, notes
        assert time.monotonic() < deadline, status
        await adapter.watch(handle, 0.1)


class TestSdl:
    def test_the_manifest_is_chain_sdks_byte_for_byte(self) -> None:
        manifest = sdl.manifest(yaml.safe_load(CHAIN_SDK_BASIC_SDL))
        assert manifest == CHAIN_SDK_BASIC_MANIFEST
        assert sdl.version(manifest).startswith("7lLjKapF")  # bytes 238, 82, 227, 41, 170, 69

    def test_a_spec_becomes_one_service_priced_in_uact(self) -> None:
        document = yaml.safe_load(sdl.dump(sdl.build(spec(), max_price_uact=10_000)))
        service = document["services"]["app"]
        assert service["image"] == "ghcr.io/acme/web:1.2"
        assert "MODE=prod" in service["env"]
        assert "CORTEX_JOB_ID=job_0123456789ab" in service["env"]
        # The first exposed TCP port is served as HTTP (ingress); the next is forwarded.
        assert service["expose"] == [
            {"port": 8080, "as": 80, "to": [{"global": True}]},
            {"port": 9000, "as": 9000, "to": [{"global": True}]},
        ]
        # The job's command runs under a wrapper that reports its exit code.
        assert service["command"] == ["/bin/sh", "-c"]
        assert service["args"][1:] == ["sh", "-c", "echo ready; sleep 600"]
        resources = document["profiles"]["compute"]["app"]["resources"]
        assert resources == {
            "cpu": {"units": 0.5},
            "memory": {"size": "512Mi"},
            "storage": [{"size": "1Gi"}],
        }
        assert document["profiles"]["placement"]["dcloud"]["pricing"]["app"] == {
            "denom": "uact",
            "amount": 10_000,
        }

    def test_a_job_without_exposed_ports_still_has_the_global_port_akash_requires(self) -> None:
        document = sdl.build(spec(ports=()), max_price_uact=10_000)
        assert document["services"]["app"]["expose"] == [
            {"port": 80, "as": 80, "to": [{"global": True}]}
        ]

    def test_gpus_become_units_and_a_vendor_model_attribute(self) -> None:
        gpu = GpuSpec(count=2, model="NVIDIA RTX 4090", min_vram_bytes=24 * 2**30)
        document = sdl.build(spec(gpu=gpu), max_price_uact=100_000)
        resources = document["profiles"]["compute"]["app"]["resources"]
        assert resources["gpu"] == {
            "units": 2,
            "attributes": {"vendor": {"nvidia": [{"model": "rtx4090", "ram": "24Gi"}]}},
        }
        # As chain-sdk's transformGpuAttributes writes them into the manifest.
        assert (
            '"gpu":{"attributes":[{"key":"vendor/nvidia/model/rtx4090/ram/24Gi","value":"true"}],'
            '"units":{"val":"2"}}'
        ) in sdl.manifest(document)
        any_model = sdl.build(spec(gpu=GpuSpec(count=1)), 100_000)["profiles"]["compute"]["app"]
        assert any_model["resources"]["gpu"]["attributes"] == {"vendor": {"nvidia": None}}
        assert '"key":"vendor/nvidia/model/*"' in sdl.manifest(
            sdl.build(spec(gpu=GpuSpec(count=1)), 100_000)
        )
        assert AkashProvider().check(spec(gpu=gpu)) == []

    def test_args_without_a_command_keep_the_images_entrypoint(self) -> None:
        service = sdl.build(spec(command=None, args=("--serve",)), 10_000)["services"]["app"]
        assert "command" not in service
        assert service["args"] == ["--serve"]


class TestPlacement:
    async def test_the_cheapest_open_bid_wins_and_the_service_runs_with_its_urls(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        handle = await adapter.submit(spec())
        assert isinstance(handle["dseq"], str) and handle["dseq"].isdigit()
        status, handle, notes = await drive(adapter, handle, {WorkloadState.RUNNING})
        assert handle["lease"]["provider"] == "akash1provider0cheap000000000000000000000000"
        assert handle["price"]["denom"] == "uact"
        assert any("took the bid" in note and handle["dseq"] in note for note in notes)
        urls = {endpoint.port: endpoint.url for endpoint in status.endpoints}
        assert urls[8080] == f"http://{handle['dseq']}-app.ingress.00000000.fake-akash.test"
        assert urls[9000].startswith("http://00000000.fake-akash.test:")
        assert 7000 not in urls
        await adapter.release(handle)
        assert fake.network.held("job_0123456789ab") == []

    async def test_a_bid_that_closed_meanwhile_makes_it_take_the_next(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        fake.network.withdraw_next_bid = True
        handle = await adapter.submit(spec())
        _, handle, notes = await drive(adapter, handle, {WorkloadState.RUNNING})
        assert handle["lease"]["provider"] == "akash1provider1pricey00000000000000000000000"
        assert any("closed; trying the next" in note for note in notes)
        await adapter.release(handle)

    async def test_an_order_that_closed_gets_a_new_deployment(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        fake.network.close_next_order = True
        first = await adapter.submit(spec())
        _, handle, notes = await drive(adapter, first, {WorkloadState.RUNNING})
        assert handle["dseq"] != first["dseq"]
        assert fake.network.deployments[first["dseq"]].state == "closed"
        assert any("created deployment" in note for note in notes)
        await adapter.release(handle)
        assert fake.network.held("job_0123456789ab") == []

    async def test_a_new_deployment_whose_creation_was_not_stored_is_carried_on_with(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        """The order closed and the adapter created a new deployment, but the answer was
        lost: the stored handle still names the closed one."""
        first = await adapter.submit(spec())
        await fake.network.close(fake.network.deployments[first["dseq"]])
        second = fake.network.create(first["sdl"])
        _, handle, notes = await drive(adapter, first, {WorkloadState.RUNNING})
        assert handle["dseq"] == second.dseq
        assert any(f"carrying on with deployment {second.dseq}" in note for note in notes)
        assert len([d for d in fake.network.deployments.values() if d.state == "active"]) == 1
        await adapter.release(handle)

    async def test_no_bid_in_time_fails_with_no_bids_and_closes_the_deployment(
        self, fake: FakeAkash
    ) -> None:
        options = {**akash_options(fake.console_url), "max_price": 100, "bid_timeout": 0.5}
        adapter = AkashProvider(**options)  # type: ignore[arg-type]
        try:
            handle = await adapter.submit(spec())
            status, _, _ = await drive(adapter, handle, {WorkloadState.FAILED})
        finally:
            await adapter.aclose()
        assert status.reason is FailureReason.NO_BIDS
        assert "CORTEX_AKASH_MAX_PRICE" in (status.message or "")
        assert fake.network.deployments[handle["dseq"]].state == "closed"

    async def test_a_lease_whose_status_stays_unknown_fails_and_is_closed(
        self, fake: FakeAkash
    ) -> None:
        for provider in fake.network.providers.values():
            provider.reachable = False
        options = {**akash_options(fake.console_url), "lease_status_timeout": 0.5}
        adapter = AkashProvider(**options)  # type: ignore[arg-type]
        try:
            handle = await adapter.submit(spec())
            status, handle, _ = await drive(adapter, handle, {WorkloadState.FAILED})
        finally:
            await adapter.aclose()
        assert status.reason is FailureReason.PROVIDER_ERROR
        assert "has not reported the lease's status" in (status.message or "")
        assert fake.network.deployments[handle["dseq"]].state == "closed"

    async def test_a_lease_the_provider_closed_fails_the_job(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        _, handle, _ = await drive(adapter, await adapter.submit(spec()), {WorkloadState.RUNNING})
        lease = fake.network.deployments[handle["dseq"]].lease
        assert lease is not None
        lease.state, lease.reason = "closed", "lease_closed_reason_unstable"
        await asyncio.sleep(0.25)  # the adapter's last answer is older than the poll interval
        status = await adapter.status(handle)
        assert status.state is WorkloadState.FAILED
        assert "lease_closed_reason_unstable" in (status.message or "")
        assert fake.network.deployments[handle["dseq"]].state == "closed"


class TestLogs:
    async def test_an_expired_log_token_is_renewed_and_no_line_is_lost_or_repeated(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        fake.network.max_jwt_ttl = 0.5
        script = "; ".join(f"echo line {i}; sleep 0.2" for i in range(10))
        handle = await adapter.submit(spec(ports=(), command=("sh", "-c", script)))
        status, handle, _ = await drive(adapter, handle, {WorkloadState.EXITED}, timeout=20)
        batch = await adapter.logs(handle, None)
        assert [line.line for line in batch.lines] == [f"line {i}" for i in range(10)]
        assert status.exit_code == 0
        assert fake.console.requests["POST /v1/create-jwt-token"] >= 2
        await adapter.release(handle)


class TestConsoleErrors:
    async def test_a_burst_of_429s_is_waited_out_as_retry_after_asks(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        fake.network.rate_limited = 2
        started = time.monotonic()
        handle = await adapter.submit(spec())
        assert time.monotonic() - started >= 2.0  # Retry-After: 1, twice
        assert handle["dseq"] in fake.network.deployments
        await adapter.release(handle)

    async def test_5xx_that_does_not_stop_is_unavailable(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        fake.network.failing = 100
        with pytest.raises(Unavailable, match="503"):
            await adapter.submit(spec())
        assert not fake.network.deployments

    async def test_closing_twice_is_harmless(self, fake: FakeAkash, adapter: AkashProvider) -> None:
        handle = await adapter.submit(spec())
        await adapter.cancel(handle)
        await adapter.release(handle)
        assert fake.console.requests["DELETE /v1/deployments/{dseq}"] == 2

    async def test_a_wrong_api_key_is_not_configured(self, fake: FakeAkash) -> None:
        adapter = AkashProvider(**{**akash_options(fake.console_url), "api_key": "ac.sk.x"})  # type: ignore[arg-type]
        try:
            health = await adapter.health()
            with pytest.raises(NotConfigured, match="Invalid API key"):
                await adapter.submit(spec())
        finally:
            await adapter.aclose()
        assert not health.healthy and "Invalid API key" in (health.reason or "")

    async def test_without_a_key_it_is_not_configured(self) -> None:
        adapter = AkashProvider()
        try:
            health = await adapter.health()
            with pytest.raises(Unavailable, match="CORTEX_AKASH_API_KEY"):
                await adapter.submit(spec())
        finally:
            await adapter.aclose()
        assert (health.healthy, health.configured) == (False, False)


class TestPolling:
    async def test_status_asked_every_few_ms_polls_console_once_per_interval(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        _, handle, _ = await drive(adapter, await adapter.submit(spec()), {WorkloadState.RUNNING})
        before = fake.console.requests["GET /v1/deployments/{dseq}"]
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            await adapter.status(handle)
            await asyncio.sleep(0.01)
        polls = fake.console.requests["GET /v1/deployments/{dseq}"] - before
        assert 1 <= polls <= 1.0 / adapter.poll_interval + 1
        await adapter.release(handle)

    async def test_while_bidding_bids_are_polled_once_per_interval_and_the_deployment_seldom(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        fake.network.bid_delay = 60
        handle = await adapter.submit(spec())
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            assert (await adapter.status(handle)).state is WorkloadState.PENDING
            await adapter.watch(handle, 5.0)
        assert fake.console.requests["GET /v1/bids"] <= 1.0 / adapter.poll_interval + 1
        assert fake.console.requests["GET /v1/deployments/{dseq}"] == 1
        await adapter.release(handle)

    async def test_watch_waits_for_the_next_poll(
        self, fake: FakeAkash, adapter: AkashProvider
    ) -> None:
        handle = await adapter.submit(spec())
        await adapter.status(handle)
        started = time.monotonic()
        await adapter.watch(handle, 5.0)
        assert 0.05 <= time.monotonic() - started <= adapter.poll_interval + 0.1
        await adapter.release(handle)
