"""Render against the fake Dispersed API (tests/fakes/render.py) on a loopback port."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from providers.base import Provider
from providers.conformance import Harness, short_spec_fields
from providers.render import RenderProvider
from providers.types import Handle, VolumeSpec, WorkloadSpec
from tests.fakes.render import FakeRender
from tests.servers import free_port, uvicorn_server

PUBLIC, SECRET = "pk_conformance", "sk_conformance"
ENDED = ("COMPLETED", "FAILED", "CANCELLED")


class RenderHarness(Harness):
    name = "render"
    finish_within = 20.0
    # Render reports a failed run, not the container's exit code.
    exit_codes = False

    def __init__(self) -> None:
        self.fake = FakeRender(keys={PUBLIC: SECRET}, step=0.05)
        self.url = ""

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with uvicorn_server(self.fake.app()) as url:
            self.url = url
            yield

    def adapter(self) -> Provider:
        return RenderProvider(
            api_url=self.url, public_key=PUBLIC, secret_key=SECRET, poll_interval=0.05
        )

    def unreachable_adapter(self) -> Provider:
        return RenderProvider(
            api_url=f"http://127.0.0.1:{free_port()}", public_key=PUBLIC, secret_key=SECRET
        )

    def _spec(self, job_id: str, env: dict[str, str]) -> WorkloadSpec:
        fields = {**short_spec_fields(job_id), "image": "ghcr.io/acme/worker:1", "env": env}
        return WorkloadSpec(**fields)  # type: ignore[arg-type]

    def printing(
        self, job_id: str, lines: list[str], exit_code: int, pause: float = 0.0
    ) -> WorkloadSpec:
        env = {
            "RENDER_FAKE_OUTPUT": "\n".join(lines),
            "RENDER_FAKE_SECONDS": str(max(pause * len(lines), 0.2)),
        }
        if exit_code:
            env["RENDER_FAKE_FAIL"] = "1"
        return self._spec(job_id, env)

    def long_running(self, job_id: str) -> WorkloadSpec:
        return self._spec(job_id, {"RENDER_FAKE_SECONDS": "600"})

    def refused(self, job_id: str) -> list[tuple[WorkloadSpec, str]]:
        spec = self.printing(job_id, ["x"], 0)
        return [
            (dataclasses.replace(spec, command=("sh", "-c", "echo x")), "command"),
            (dataclasses.replace(spec, args=("--fast",)), "args"),
            (dataclasses.replace(spec, volumes=(VolumeSpec("data", "/data"),)), "volumes"),
            (dataclasses.replace(spec, duration_seconds=59), "duration"),
        ]

    def unknown_handle(self) -> Handle:
        return {"job": "00000000-0000-4000-8000-000000000000", "title": "cortex-job_0"}

    async def held(self, job_id: str) -> list[str]:
        title = f"cortex-{job_id}"
        held = []
        for job in self.fake.jobs.values():
            self.fake.advance(job)
            if job.body.get("title") == title and job.status not in ENDED:
                held.append(f"Render job {job.uuid}")
        return held


HARNESS = RenderHarness
