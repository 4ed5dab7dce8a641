"""The local provider's settings (CORTEX_LOCAL_*, and DOCKER_HOST)."""

from __future__ import annotations

from pydantic import AliasChoices, Field

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
