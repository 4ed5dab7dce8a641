"""The golem provider's settings (CORTEX_GOLEM_*)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from providers.options import ProviderOptions


class GolemOptions(ProviderOptions):
    # Without an app key the provider is not configured.
    api_url: str = "http://127.0.0.1:7465"
    app_key: SecretStr | None = Field(default=None, description="yagna app-key create")
    payment_network: str = Field(
        default="polygon", description="polygon or mainnet (GLM); holesky, hoodi (test GLM)"
    )
    registry_url: str = "https://registry.golem.network"
    budget: float = Field(default=1.0, gt=0, description="the most GLM one job may spend")
    poll_interval: float = Field(default=2.0, gt=0, description="seconds between looks")
    glm_usd: float = Field(
        default=0.25, ge=0, description="USD per GLM, for cost in USD (set today's rate)"
    )
