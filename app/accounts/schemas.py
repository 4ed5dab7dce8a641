"""The body of GET /account."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Output(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RateLimit(_Output):
    requests_per_second: float | None = Field(description="Per API key; null: unlimited.")
    burst: int | None = Field(description="Requests a key may send at once; null: unlimited.")


class Quota(_Output):
    name: Literal[
        "max_active_jobs",
        "max_jobs_per_batch",
        "max_streams_per_key",
        "max_webhook_endpoints",
        "max_templates",
    ] = Field(description="The name a QUOTA_EXCEEDED error gives in its details.")
    limit: int | None = Field(description="null: unlimited.")
    current: int | None = Field(
        description="What counts against it now (streams: the calling key's); null for the "
        "size of a batch, which is checked per batch."
    )


class BudgetStatus(_Output):
    usd: float = Field(description="The budget, in USD per period.")
    period: Literal["day", "month", "total"] = Field(
        description="day and month: UTC calendar; total: since the account was created."
    )
    spent: float = Field(description="USD spent in the current period.")
    left: float = Field(description="USD left in the current period.")


class Account(_Output):
    id: str
    name: str
    rate_limit: RateLimit
    quotas: list[Quota]
    max_engine_slots: int | None = Field(
        description="Jobs the engine drives at once for this account; null: its fair share."
    )
    budget: BudgetStatus | None = Field(description="null: no budget.")
    allowed_providers: list[str] | None = Field(
        description="Providers the account may submit to; null: every provider."
    )
