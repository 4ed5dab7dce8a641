"""Operator settings: the only module that reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("cortex-gateway", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORTEX_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "CORTEX_DATABASE_URL"),
        description="postgresql+asyncpg://... ; unset: an embedded PostgreSQL in data_dir.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=_default_data_dir)
    log_level: LogLevel = "info"
    # Operations: `json` writes one JSON object per log line (with request and job ids).
    log_format: Literal["text", "json"] = "text"
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token GET /metrics requires; unset: /metrics is open"
    )
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    database_pool_size: int = Field(default=10, gt=0)
    gc_threshold: int = Field(
        default=20_000,
        ge=0,
        description="allocations between young garbage collections (0: Python's default, 700)",
    )

    stream_token_ttl: float = Field(
        default=300.0, gt=0, le=86_400, description="seconds a stream token stays valid"
    )
    # Heartbeats keep idle streams open through proxies; a client that accepts nothing for
    # stream_send_timeout seconds is disconnected.
    stream_heartbeat: float = Field(default=15.0, gt=0)
    stream_send_timeout: float = Field(default=30.0, gt=0)

    # Webhooks.
    webhooks_enabled: bool = Field(default=True, description="run the dispatcher here")
    webhook_allowed_networks: str = Field(
        default="",
        description="comma-separated CIDRs webhooks may reach although they are not public",
    )
    webhook_retry_schedule: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        description="seconds before each retry after the first attempt (jittered by 10%)",
    )
    webhook_disable_after: float = Field(
        default=5 * 24 * 3600, gt=0, description="disable an endpoint failing this long"
    )
    webhook_timeout: float = Field(default=10.0, gt=0, le=60)
    webhook_concurrency: int = Field(default=64, gt=0, description="sends in flight per process")
    webhook_rotation_grace: float = Field(
        default=24 * 3600, ge=0, description="seconds the previous secret keeps signing"
    )

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        import ipaddress

        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        delays = [float(part) for part in value.split(",") if part.strip()]
        if any(delay < 0 for delay in delays):
            raise ValueError("retry delays must not be negative")
        return value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.webhook_retry_schedule.split(",") if part.strip())

    # The engine that runs jobs in every gateway process.
    engine_enabled: bool = True
    engine_poll_interval: float = Field(default=1.0, gt=0, description="seconds between checks")
    engine_lease_seconds: float = Field(
        default=30.0, gt=0, description="how long a dead process's jobs wait for another"
    )
    engine_max_jobs: int = Field(default=1000, gt=0, description="jobs one process drives")
    metrics_interval: float = Field(default=10.0, gt=0, description="seconds between samples")

    # Admission: a provider that does not answer a health check or a quote within this many
    # seconds counts as unavailable (a submission gets 503 PROVIDER_UNAVAILABLE, a listing
    # shows it unhealthy, `auto` skips it) rather than holding the request.
    provider_timeout: float = Field(
        default=10.0, gt=0, le=120, description="seconds a provider has to answer health/quote"
    )

    # The local provider: a Docker Engine API (Docker, or podman's compatible service).
    docker_host: str = Field(
        default="unix:///var/run/docker.sock",
        validation_alias=AliasChoices("DOCKER_HOST", "CORTEX_DOCKER_HOST"),
    )
    local_publish_host: str = "127.0.0.1"
    local_usd_per_cpu_hour: float = Field(default=0.0, ge=0)

    # Akash through the Console API (managed wallet); without an API key it is not configured.
    akash_api_key: SecretStr | None = Field(default=None, description="a Console API key")
    akash_api_url: str = "https://console-api.akash.network"
    akash_bid_timeout: float = Field(
        default=180.0, gt=0, description="seconds to wait for an open bid before no_bids"
    )
    akash_max_price: int = Field(
        default=10_000, gt=0, description="the SDL's maximum price per block, in uact"
    )
    akash_poll_interval: float = Field(
        default=5.0, gt=0, description="seconds between two looks at one deployment"
    )

    # Render's compute subnet (OTOY's Dispersed API); without both keys it is not configured.
    render_api_url: str = "https://api.dispersed.com"
    render_public_key: str | None = None
    render_secret_key: SecretStr | None = None
    render_poll_interval: float = Field(default=5.0, gt=0, description="seconds between looks")
    render_gpu_rates: dict[str, float] | None = Field(
        default=None, description="USD per GPU-hour by model, as JSON; unset: the adapter's"
    )
    render_assign_timeout: float = Field(
        default=300.0, ge=1, description="seconds Render has to find a node for a job"
    )

    # Golem through a yagna requestor daemon's REST API; without an app key it is not configured.
    golem_api_url: str = "http://127.0.0.1:7465"
    golem_app_key: SecretStr | None = Field(default=None, description="yagna app-key create")
    golem_payment_network: str = Field(
        default="polygon", description="polygon or mainnet (GLM); holesky, hoodi (test GLM)"
    )
    golem_registry_url: str = "https://registry.golem.network"
    golem_budget: float = Field(default=1.0, gt=0, description="the most GLM one job may spend")
    golem_poll_interval: float = Field(default=2.0, gt=0, description="seconds between looks")
    golem_glm_usd: float = Field(
        default=0.25, ge=0, description="USD per GLM, for cost in USD (set today's rate)"
    )

    def provider_options(self, name: str) -> dict[str, object]:
        """Constructor options for a built-in adapter."""
        if name == "local":
            return {
                "docker_host": self.docker_host,
                "publish_host": self.local_publish_host,
                "usd_per_cpu_hour": self.local_usd_per_cpu_hour,
            }
        if name == "akash":
            return {
                "api_key": self.akash_api_key.get_secret_value() if self.akash_api_key else None,
                "api_url": self.akash_api_url,
                "bid_timeout": self.akash_bid_timeout,
                "max_price": self.akash_max_price,
                "poll_interval": self.akash_poll_interval,
            }
        if name == "render":
            return {
                "api_url": self.render_api_url,
                "public_key": self.render_public_key,
                "secret_key": (
                    self.render_secret_key.get_secret_value() if self.render_secret_key else None
                ),
                "poll_interval": self.render_poll_interval,
                "gpu_rates": self.render_gpu_rates,
                "assign_timeout": self.render_assign_timeout,
            }
        if name == "golem":
            return {
                "api_url": self.golem_api_url,
                "app_key": self.golem_app_key.get_secret_value() if self.golem_app_key else None,
                "payment_network": self.golem_payment_network,
                "registry_url": self.golem_registry_url,
                "budget": self.golem_budget,
                "poll_interval": self.golem_poll_interval,
                "glm_usd": self.golem_glm_usd,
            }
        return {}

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()
