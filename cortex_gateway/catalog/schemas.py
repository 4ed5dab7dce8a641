"""What the providers API answers, in the contract's camelCase shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ProviderHealth(_Model):
    status: Literal["healthy", "unhealthy", "not_configured"] = Field(
        description="not_configured: the gateway lacks this provider's settings (an API key) "
        "or its adapter; unhealthy: configured but not usable now (see reason)."
    )
    reason: str | None = None


class ProviderCapabilities(_Model):
    ports: bool = Field(description="Can expose a job's ports to the internet.")
    command_override: bool = Field(description="Honours a job's command and args.")
    volumes: bool = Field(description="Can mount a job's volumes.")
    gpus: bool = Field(description="Can give a job GPUs.")
    min_duration: int = Field(description="Shortest duration accepted, in seconds.")
    max_duration: int | None = Field(description="Longest duration accepted, in seconds.")


class ProviderPricing(_Model):
    description: str


class Provider(_Model):
    name: str
    health: ProviderHealth
    capabilities: ProviderCapabilities | None = Field(
        description="Null when this gateway has no adapter for the provider yet."
    )
    pricing: ProviderPricing | None
