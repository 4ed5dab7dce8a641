"""What the providers API answers, in the contract's camelCase shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from app.jobs import schemas as job_schemas
from providers.registry import AUTO


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


class QuoteRequest(job_schemas.JobSpec):
    """The body of POST /providers/quote: a job specification, compared across providers
    without submitting it. `provider` defaults to "auto" (every provider, or `providers`)."""

    provider: Annotated[str, AfterValidator(job_schemas._provider_name)] = Field(
        default=AUTO, description='"auto" (the default) compares every candidate; a name, one.'
    )

    @model_validator(mode="before")
    @classmethod
    def _auto_candidates(cls, data: Any) -> Any:
        if isinstance(data, dict) and "provider" not in data:
            data = {**data, "provider": AUTO}
        return job_schemas.with_auto_candidates(data)


class Refusal(_Model):
    field: str
    message: str


class QuoteCandidate(_Model):
    provider: str
    verdict: Literal["chosen", "eligible", "incapable", "unhealthy", "too_dear", "tried"] = Field(
        description="chosen: where the job would go; eligible: could take it but dearer; "
        "incapable: cannot run this spec; unhealthy: down or not configured; too_dear: over "
        "maxPricePerHour."
    )
    reason: str
    usd_per_hour: float | None = None
    native_amount: float | None = None
    native_unit: str | None = None
    refusals: list[Refusal] = Field(default_factory=list)


class QuoteComparison(_Model):
    chosen: str | None = Field(description="Where the job would be placed; null: nowhere.")
    usd_per_hour: float | None = Field(description="The chosen provider's price.")
    candidates: list[QuoteCandidate] = Field(description="Chosen first, then cheapest first.")
