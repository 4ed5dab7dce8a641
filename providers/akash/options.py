"""The akash provider's settings (CORTEX_AKASH_*)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from providers.options import ProviderOptions


class AkashOptions(ProviderOptions):
    # Without an API key the provider is not configured.
    api_key: SecretStr | None = Field(default=None, description="a Console API key")
    api_url: str = "https://console-api.akash.network"
    bid_timeout: float = Field(
        default=180.0, gt=0, description="seconds to wait for an open bid before no_bids"
    )
    max_price: int = Field(
        default=10_000, gt=0, description="the SDL's maximum price per block, in uact"
    )
    bid_window: float = Field(
        default=0.0,
        ge=0,
        description="seconds to keep collecting bids after the first one, then take the cheapest",
    )
    poll_interval: float = Field(
        default=5.0, gt=0, description="seconds between two looks at one deployment"
    )
    retry_delay: float = Field(
        default=1.0, gt=0, description="seconds before a failed Console call is tried again"
    )
    # Console ignores it on accounts with managed deposits and refuses a create without it
    # ("deposit is required") on the others.
    deposit_usd: float | None = Field(
        default=None, gt=0, description="the escrow deposit sent with each deployment, in USD"
    )
