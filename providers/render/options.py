"""The render provider's settings (CORTEX_RENDER_*)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from providers.options import ProviderOptions


class RenderOptions(ProviderOptions):
    # Without both keys the provider is not configured.
    api_url: str = "https://api.dispersed.com"
    public_key: str | None = None
    secret_key: SecretStr | None = None
    poll_interval: float = Field(default=5.0, gt=0, description="seconds between looks")
    gpu_rates: dict[str, float] | None = Field(
        default=None, description="USD per GPU-hour by model, as JSON; unset: the adapter's"
    )
    assign_timeout: float = Field(
        default=300.0, ge=1, description="seconds Render has to find a node for a job"
    )
