"""The local provider's settings (CORTEX_LOCAL_*, and DOCKER_HOST)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, field_validator

from providers.options import ProviderOptions


class LocalOptions(ProviderOptions):
    # DOCKER_HOST is the variable every Docker client reads; CORTEX_DOCKER_HOST overrides it.
    docker_host: str = Field(
        default="unix:///var/run/docker.sock",
        validation_alias=AliasChoices("docker_host", "CORTEX_DOCKER_HOST", "DOCKER_HOST"),
        description="the Docker Engine API (unix:///path or tcp://host:port)",
    )
    publish_host: str = Field(
        default="127.0.0.1", description="host address exposed ports are published on"
    )
    usd_per_cpu_hour: float = Field(default=0.0, ge=0, description="price per CPU-hour")
    network: str = Field(
        default="cortex-jobs",
        min_length=1,
        max_length=128,
        description="network of jobs that expose no port: `none`, or a network name "
        "(created as an internal network when missing)",
    )
    ports_network: str = Field(
        default="cortex-jobs-ports",
        min_length=1,
        max_length=128,
        description="network of jobs that expose ports (created as a plain bridge when "
        "missing), or `off` to refuse exposed ports",
    )
    allowed_registries: str = Field(
        default="",
        max_length=4096,
        description="comma-separated registries images may come from (empty: any)",
    )
    pids_limit: int = Field(
        default=512, ge=16, le=1_000_000, description="most processes a job may run at once"
    )
    log_max_bytes: int = Field(
        default=256 * 2**20, ge=2**20, description="size of a container log file before rotation"
    )
    log_max_files: int = Field(default=2, ge=1, le=100, description="log files kept per job")
    writable_layer_limit: Literal["auto", "required", "off"] = Field(
        default="auto",
        description="limit the writable layer to the job's storage: where the storage driver "
        "can (auto), always (required: jobs fail where it cannot), or never (off)",
    )

    @field_validator("network", "ports_network")
    @classmethod
    def _not_the_host(cls, value: str) -> str:
        # The host's network would undo every other confinement.
        if value == "host":
            raise ValueError("the host network is not allowed for jobs")
        return value
