"""The Golem provider against the fake yagna (tests/fakes/golem), a real HTTP server on a
loopback port; the fake runs each job's command as a local process."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from providers.base import Provider
from providers.conformance import Harness, short_spec_fields
from providers.golem import GolemProvider
from providers.types import Handle, PortSpec, VolumeSpec, WorkloadSpec
from tests.fakes.golem import APP_KEY, RunningFake, running_fake
from tests.fakes.golem.network import Timing
from tests.servers import free_port

IMAGE = "cortex/busybox:1"
POLL = 0.05


def fast_timing() -> Timing:
    return Timing(
        deploy_seconds=0.2,
        respond_seconds=0.05,
        approve_seconds=0.3,
        debit_note_interval=0.5,
        ping_seconds=1.0,
        transfer_retry_seconds=(0.1, 0.2),
    )


def golem_adapter(fake: RunningFake, **options: object) -> GolemProvider:
    settings: dict[str, object] = {
        "api_url": fake.url,
        "app_key": APP_KEY,
        "registry_url": fake.url,
        "payment_network": "polygon",
        "budget": 1.0,
        "poll_interval": POLL,
        "glm_usd": 0.2,
        **options,
    }
    return GolemProvider(**settings)  # type: ignore[arg-type]


def script(lines: list[str], exit_code: int, pause: float) -> str:
    steps = []
    for index, line in enumerate(lines):
        if index and pause:
            steps.append(f"sleep {pause}")
        steps.append(f"echo {shlex.quote(line)}")
    steps.append(f"exit {exit_code}")
    return "; ".join(steps)


def shell_spec(job_id: str, command: str, **extra: object) -> WorkloadSpec:
    fields = {**short_spec_fields(job_id), "image": IMAGE, **extra}
    fields["command"] = ("/bin/sh", "-c", command)
    return WorkloadSpec(**fields)  # type: ignore[arg-type]


class GolemHarness(Harness):
    name = "golem"
    finish_within = 30.0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with running_fake(fast_timing()) as fake:
            self.fake = fake
            yield

    def adapter(self) -> Provider:
        return golem_adapter(self.fake)

    def unreachable_adapter(self) -> Provider:
        url = f"http://127.0.0.1:{free_port()}"
        return GolemProvider(api_url=url, app_key=APP_KEY, registry_url=url, poll_interval=POLL)

    def printing(
        self, job_id: str, lines: list[str], exit_code: int, pause: float = 0.0
    ) -> WorkloadSpec:
        return shell_spec(job_id, script(lines, exit_code, pause))

    def long_running(self, job_id: str) -> WorkloadSpec:
        return shell_spec(job_id, "sleep 600", volumes=(VolumeSpec("scratch", "/scratch", 2**30),))

    def refused(self, job_id: str) -> list[tuple[WorkloadSpec, str]]:
        without_command = WorkloadSpec(**{**short_spec_fields(job_id), "image": IMAGE})  # type: ignore[arg-type]
        relative = dataclasses.replace(without_command, command=("sh", "-c", "true"))
        return [
            (without_command, "command"),
            (relative, "command"),
            (shell_spec(job_id, "true", ports=(PortSpec(8080, expose=True),)), "ports"),
            (
                shell_spec(job_id, "true", volumes=(VolumeSpec("ro", "/ro", 2**20, True),)),
                "volumes",
            ),
            (shell_spec(job_id, "true", volumes=(VolumeSpec("unsized", "/data"),)), "volumes"),
            (shell_spec(job_id, "true", duration_seconds=0), "duration"),
        ]

    def unknown_handle(self) -> Handle:
        return {
            "job": "job_000000000000",
            "phase": "negotiating",
            "demandId": "0" * 32,
            "allocationId": "0" * 32,
            "demand": {"properties": {}, "constraints": ""},
            "threads": 1,
            "duration": 60,
            "deadline": 0,
            "offers": {},
            "firstAnswerAt": None,
        }

    async def held(self, job_id: str) -> list[str]:
        async with httpx.AsyncClient(base_url=self.fake.url) as client:
            response = await client.get("/_fake/held", params={"job": job_id})
        found: list[str] = response.json()
        return found


HARNESS = GolemHarness
