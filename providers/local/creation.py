"""The requests that make up a job's container besides its create: its volumes, finding it
again after a lost answer, and the job spec file placed in it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, Protocol

import httpx

from providers.errors import Rejected, Unavailable
from providers.local import containers, docker_api, sandbox
from providers.local.containers import JOB_LABEL, MANAGED_LABEL
from providers.local.spec_archive import spec_archive
from providers.types import WorkloadSpec

logger = logging.getLogger(__name__)


class Request(Protocol):
    """The adapter's request to the runtime (its errors already translated)."""

    def __call__(self, method: str, path: str, **kwargs: Any) -> Awaitable[httpx.Response]: ...


async def create_volume(request: Request, spec: WorkloadSpec, name: str) -> str:
    volume_name = f"cortex-{spec.job_id}-{name}"
    response = await request(
        "POST",
        "/volumes/create",
        json={"Name": volume_name, "Labels": {JOB_LABEL: spec.job_id, MANAGED_LABEL: "true"}},
    )
    if response.status_code not in (200, 201, 409):
        docker_api.raise_for_server_error(response)
        raise Rejected(f"cannot create volume {name}: {docker_api.message(response)}")
    return volume_name


async def own_container(request: Request, name: str, job_id: str) -> str:
    """The id of the container named `name`, created by an earlier attempt for this job."""
    response = await request("GET", f"/containers/{name}/json")
    if response.status_code != 200:
        raise Unavailable(f"container {name} exists but cannot be inspected")
    info = response.json()
    if (info.get("Config", {}).get("Labels") or {}).get(JOB_LABEL) != job_id:
        raise Rejected(f"a container named {name} exists and is not this job's")
    return str(info["Id"])


async def put_spec_file(request: Request, container_id: str, spec: WorkloadSpec) -> None:
    response = await request(
        "PUT",
        f"/containers/{container_id}/archive",
        params={"path": "/"},
        content=spec_archive(spec.document),
        headers={"Content-Type": "application/x-tar"},
    )
    if response.status_code != 200:
        docker_api.raise_for_server_error(response)
        raise Rejected(
            f"cannot place the job spec in the container: {docker_api.message(response)}"
        )


class ContainerCreate:
    """`POST /containers/create` of a job's container, with its writable layer limited as
    the operator's `writable_layer_limit` asks (auto: if the storage driver can)."""

    def __init__(
        self, request: Request, box: sandbox.Sandbox, publish_host: str, writable_layer_limit: str
    ) -> None:
        self._request = request
        self._sandbox = box
        self._publish_host = publish_host
        self._setting = writable_layer_limit
        # Learnt from the runtime's first refusal, when the option leaves it to the driver.
        self._limit_works = writable_layer_limit != "off"

    async def create(self, spec: WorkloadSpec, name: str, volumes: list[str]) -> httpx.Response:
        """The runtime's answer (the caller reads it: 404 is a missing image)."""
        limit = self._limit_works and spec.storage_bytes > 0
        path = f"/containers/create?name={name}"
        response = await self._request("POST", path, json=self._config(spec, volumes, limit))
        if limit and sandbox.storage_opt_unsupported(response):
            if self._setting == "required":
                raise Rejected(
                    "the container runtime cannot limit the writable layer's size "
                    f"(writable_layer_limit is required): {docker_api.message(response)}"
                )
            logger.warning(
                "the storage driver cannot limit a container's writable layer; local jobs "
                "run without that limit: %s",
                docker_api.message(response),
            )
            self._limit_works = False
            response = await self._request("POST", path, json=self._config(spec, volumes, False))
        return response

    def _config(self, spec: WorkloadSpec, volumes: list[str], limit: bool) -> dict[str, Any]:
        return containers.container_config(
            spec, volumes, self._publish_host, self._sandbox, limit_writable_layer=limit
        )
