"""The local provider on the real container runtime (podman's or Docker's Engine API)."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex

import httpx

from providers.base import Provider
from providers.conformance import Harness, short_spec_fields
from providers.local import JOB_LABEL, LocalProvider
from providers.types import Handle, VolumeSpec, WorkloadSpec


def _script(lines: list[str], exit_code: int, pause: float) -> str:
    steps = []
    for index, line in enumerate(lines):
        if index and pause:
            steps.append(f"sleep {pause}")
        steps.append(f"echo {shlex.quote(line)}")
    steps.append(f"exit {exit_code}")
    return "; ".join(steps)


class LocalHarness(Harness):
    name = "local"
    finish_within = 60.0

    def __init__(self) -> None:
        # tests/conftest.py provides a runtime (podman's service) when DOCKER_HOST is unset.
        self.docker_host = os.environ["DOCKER_HOST"]

    def adapter(self) -> Provider:
        return LocalProvider(docker_host=self.docker_host)

    def unreachable_adapter(self) -> Provider:
        return LocalProvider(docker_host="unix:///nonexistent/cortex-test.sock")

    def _spec(self, job_id: str, script: str, **extra: object) -> WorkloadSpec:
        fields = {**short_spec_fields(job_id), "image": "busybox:latest", **extra}
        fields["command"] = ("sh", "-c", script)
        return WorkloadSpec(**fields)  # type: ignore[arg-type]

    def printing(
        self, job_id: str, lines: list[str], exit_code: int, pause: float = 0.0
    ) -> WorkloadSpec:
        return self._spec(job_id, _script(lines, exit_code, pause))

    def long_running(self, job_id: str) -> WorkloadSpec:
        return self._spec(
            job_id,
            "sleep 600",
            volumes=(VolumeSpec("scratch", "/scratch"),),
        )

    def refused(self, job_id: str) -> list[tuple[WorkloadSpec, str]]:
        spec = self.printing(job_id, ["x"], 0)
        return [(dataclasses.replace(spec, duration_seconds=0), "duration")]

    def unknown_handle(self) -> Handle:
        return {"containerId": "0" * 64, "containerName": "cortex-job_000000000000", "volumes": []}

    async def held(self, job_id: str) -> list[str]:
        transport = httpx.AsyncHTTPTransport(uds=self.docker_host.removeprefix("unix://"))
        label = json.dumps({"label": [f"{JOB_LABEL}={job_id}"]})
        async with httpx.AsyncClient(transport=transport, base_url="http://docker") as docker:
            containers = await docker.get(
                "/v1.41/containers/json", params={"all": "true", "filters": label}
            )
            volumes = await docker.get("/v1.41/volumes", params={"filters": label})
        return [f"container {c['Id'][:12]}" for c in containers.json()] + [
            f"volume {v['Name']}" for v in volumes.json().get("Volumes") or []
        ]


HARNESS = LocalHarness
