"""Akash through the fake Console API (tests/fakes/akash), which runs each service's command
as a local process."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from providers.akash import AkashProvider
from providers.base import Provider
from providers.conformance import Harness, short_spec_fields
from providers.types import Handle, VolumeSpec, WorkloadSpec
from tests.fakes.akash import FakeAkash, running_fake
from tests.providers.conformance.harness_local import _script
from tests.servers import free_port

API_KEY = "ac.sk.test." + "ab" * 32


def akash_options(console_url: str) -> dict[str, object]:
    """Fast polls for tests; everything else as configured in production."""
    return {
        "api_key": API_KEY,
        "api_url": console_url,
        "bid_timeout": 10.0,
        "poll_interval": 0.2,
        "retry_delay": 0.05,
    }


class AkashHarness(Harness):
    name = "akash"
    finish_within = 30.0

    def __init__(self) -> None:
        self.fake: FakeAkash | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with running_fake(api_key=API_KEY, bid_delay=0.2, start_delay=0.1) as fake:
            self.fake = fake
            yield

    def adapter(self) -> Provider:
        assert self.fake is not None
        return AkashProvider(**akash_options(self.fake.console_url))  # type: ignore[arg-type]

    def unreachable_adapter(self) -> Provider:
        return AkashProvider(  # type: ignore[arg-type]
            **{**akash_options(f"http://127.0.0.1:{free_port()}"), "retry_delay": 0.01}
        )

    def _spec(self, job_id: str, script: str) -> WorkloadSpec:
        fields = {**short_spec_fields(job_id), "image": "busybox:1.36"}
        fields["command"] = ("sh", "-c", script)
        return WorkloadSpec(**fields)  # type: ignore[arg-type]

    def printing(
        self, job_id: str, lines: list[str], exit_code: int, pause: float = 0.0
    ) -> WorkloadSpec:
        return self._spec(job_id, _script(lines, exit_code, pause))

    def long_running(self, job_id: str) -> WorkloadSpec:
        return self._spec(job_id, "sleep 600")

    def refused(self, job_id: str) -> list[tuple[WorkloadSpec, str]]:
        spec = self.printing(job_id, ["x"], 0)
        return [
            (dataclasses.replace(spec, volumes=(VolumeSpec("data", "/data", 2**30),)), "volumes"),
            (dataclasses.replace(spec, cpu_millicores=1), "cpu"),
        ]

    def unknown_handle(self) -> Handle:
        return {
            "jobId": "job_000000000000",
            "dseq": "1",
            "sdl": "",
            "manifest": "[]",
            "version": "",
            "waitsForExit": True,
            "exposed": [],
            "lease": None,
            "price": None,
            "statusNullSince": None,
            "biddingSince": 0.0,
        }

    async def held(self, job_id: str) -> list[str]:
        assert self.fake is not None
        return self.fake.network.held(job_id)


HARNESS = AkashHarness
