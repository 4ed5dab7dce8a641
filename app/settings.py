"""Operator settings: the only module that reads the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import platformdirs
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from providers import registry
from providers.options import ProviderOptions

LogLevel = Literal["critical", "error", "warning", "info", "debug"]
OptionsT = TypeVar("OptionsT", bound=ProviderOptions)

# Settings keywords that predate the per-adapter prefix, as (adapter, option).
LEGACY_OPTIONS = {"docker_host": ("local", "docker_host")}


class ProviderSettingsError(ValueError):
    """An adapter's CORTEX_<NAME>_* variables do not validate; the message names each one."""


def _env_word(name: str) -> str:
    """A provider name as it appears in its variables: `my-net` -> `MY_NET`."""
    return name.upper().replace("-", "_").replace(".", "_")


def _variable(prefix: str, model: type[ProviderOptions], location: tuple[Any, ...]) -> str:
    field = str(location[0]) if location else ""
    info = model.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices):
        names = [str(choice) for choice in alias.choices if str(choice).isupper()]
        if names:
            return " or ".join(names)
    return f"{prefix}{field.upper()}"


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("cortex-gateway", appauthor=False))


DAY = 86_400.0
# `serve --workers` at most (CORTEX_WORKERS).
MAX_WORKERS = 64
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `15m`, `90s` or plain seconds, in seconds; `0` and `off` are 0."""
    word = text.strip().lower()
    if word in ("off", "0", ""):
        return 0.0
    unit = _UNITS.get(word[-1])
    number = word[:-1] if unit is not None else word
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration: write it like 30d, 12h or 90s") from None
    if seconds < 0:
        raise ValueError(f"{text!r}: a duration cannot be negative")
    return seconds


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORTEX_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "CORTEX_DATABASE_URL"),
        description="postgresql+asyncpg://... ; unset: an embedded PostgreSQL in data_dir.",
    )
    # A direct (session) connection to the same database, for what a pooler in transaction
    # mode cannot carry: LISTEN, and the pruner's session advisory lock; unset: DATABASE_URL
    # (docs/deployment.md).
    direct_database_url: str | None = None
    # `serve`: what this process runs (`all`, `api`: HTTP only, `engine`: the engine, webhook
    # dispatcher and pruner, with only /healthz, /readyz and /metrics over HTTP), and how many
    # worker processes share its port (unset: one per core available to it).
    role: Literal["all", "api", "engine"] = "all"
    workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=_default_data_dir)
    # Where `serve` writes the first admin key (mode 0600) instead of showing it on the
    # terminal: for unattended starts whose output is collected.
    admin_key_file: Path | None = None
    log_level: LogLevel = "info"
    # OpenTelemetry (the `[otel]` extra): traces go to this OTLP/HTTP endpoint; unset: off.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_exporter_otlp_endpoint"),
    )
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

    # Web origins whose pages may call the API and open its streams (app.cors).
    cors_origins: str = Field(
        default="",
        description="comma-separated exact origins (scheme://host[:port]), or * for any origin"
        " without credentials; empty: no CORS",
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
    webhook_endpoint_concurrency: int = Field(
        default=8, gt=0, description="sends in flight per endpoint and process"
    )
    webhook_rotation_grace: float = Field(
        default=24 * 3600, ge=0, description="seconds the previous secret keeps signing"
    )

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: str) -> str:
        from app.cors import parse_origins

        parse_origins(value)
        return value

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        from app.cors import parse_origins

        return parse_origins(self.cors_origins)

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
    engine_submit_timeout: float = Field(
        default=900.0,
        gt=0,
        description="seconds a job's provider may stay unavailable before it fails",
    )

    # Each account's limits unless `cortex-gateway accounts set` overrides them (app.accounts);
    # 0 means unlimited. docs/operations.md lists what each answers when exceeded.
    default_rate_limit: float = Field(default=100.0, ge=0, description="requests/s per API key")
    default_rate_burst: int = Field(default=200, ge=0, description="requests a key may burst")
    # How often each process shares its per-key request counts with the others; the lag
    # bounds how far N processes together can exceed a key's rate (docs/operations.md).
    rate_limit_sync_interval: float = Field(
        default=0.2, gt=0, le=5, description="seconds between rate limit reconciliations"
    )
    default_max_active_jobs: int = Field(default=1000, ge=0)
    default_max_jobs_per_batch: int = Field(default=1000, ge=0)
    default_max_streams_per_key: int = Field(default=100, ge=0)
    default_max_webhook_endpoints: int = Field(default=50, ge=0)
    default_max_templates: int = Field(default=500, ge=0)
    default_max_engine_slots: int = Field(default=0, ge=0, description="0: the fair share only")
    default_budget_usd: float | None = Field(default=None, ge=0)
    default_budget_period: Literal["day", "month", "total"] = "month"

    # Past this many bytes of stored log text a job's further lines are counted, not stored
    # (one `logs_truncated` event says how many when the job ends).
    log_max_bytes_per_job: int = Field(default=10 * 1024 * 1024, gt=0, description="bytes")

    # At most one `progress` event (and `job.progress` webhook) per job per this many seconds;
    # the last change within an interval follows once it has passed (app/jobs/progress.py).
    progress_event_interval: float = Field(
        default=5.0, ge=0.1, le=3600, description="seconds between a job's progress events"
    )

    # Job outputs (app/outputs/): files a workload leaves in /cortex/output/, collected when
    # it ends into the artifact store (docs/operations.md#outputs).
    artifacts_url: str | None = Field(
        default=None,
        description="s3://bucket/prefix?endpoint=...&region=... ; unset: data_dir/artifacts",
    )
    aws_access_key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID", "CORTEX_AWS_ACCESS_KEY_ID")
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY", "CORTEX_AWS_SECRET_ACCESS_KEY"),
    )
    # At most 5 GiB: one S3 PUT's limit.
    output_max_bytes: int = Field(
        default=100 * 1024 * 1024, gt=0, le=5 * 1024**3, description="output bytes per job"
    )
    output_url_ttl: float = Field(
        default=3600.0, gt=0, le=7 * DAY, description="seconds a signed outputUrl stays valid"
    )
    # The gateway's address as its users reach it (`https://gw.example.com`): signed output
    # URLs are absolute with it; unset, relative to the request's own base URL.
    public_url: str | None = None

    @field_validator("artifacts_url")
    @classmethod
    def _valid_artifacts_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        from app.outputs.s3 import BucketUrl

        BucketUrl.parse(value)
        return value

    @model_validator(mode="after")
    def _bucket_credentials(self) -> Settings:
        if self.artifacts_url and not (self.aws_access_key_id and self.aws_secret_access_key):
            raise ValueError(
                "CORTEX_ARTIFACTS_URL names a bucket: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY"
            )
        return self

    # Retention (app/retention.py): how long rows are kept, as durations (`30d`, `12h`, `90s`;
    # `0` or `off` keeps them forever), and how often the background pruning runs.
    retention_logs: float = Field(default=30 * DAY, ge=0, description="log lines of ended jobs")
    retention_metrics: float = Field(default=30 * DAY, ge=0, description="metric samples")
    retention_events: float = Field(default=90 * DAY, ge=0, description="events of ended jobs")
    retention_deliveries: float = Field(
        default=30 * DAY, ge=0, description="finished webhook deliveries and their attempts"
    )
    retention_outputs: float = Field(
        default=30 * DAY, ge=0, description="collected outputs of ended jobs"
    )
    retention_interval: float = Field(default=3600.0, gt=0, description="between prunings")

    @field_validator(
        "retention_logs",
        "retention_metrics",
        "retention_events",
        "retention_deliveries",
        "retention_outputs",
        "retention_interval",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    # Admission: a provider that does not answer a health check or a quote within this many
    # seconds counts as unavailable (a submission gets 503 PROVIDER_UNAVAILABLE, a listing
    # shows it unhealthy, `auto` skips it) rather than holding the request.
    provider_timeout: float = Field(
        default=10.0, gt=0, le=120, description="seconds a provider has to answer health/quote"
    )

    # Each adapter's own options (CORTEX_<NAME>_<FIELD>, validated into its options_model)
    # are read by provider_options(). Given to the constructor instead (tests, embedding
    # applications) as `<name>_<field>=...`, they are gathered here, by adapter name.
    provider_settings: dict[str, dict[str, Any]] = Field(default_factory=dict, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _gather_provider_settings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        gathered: dict[str, dict[str, Any]] = {
            name: dict(values) for name, values in (data.get("provider_settings") or {}).items()
        }
        names = sorted(registry.available_providers(), key=len, reverse=True)
        for key in [key for key in data if key not in cls.model_fields]:
            lowered = key.lower()
            if lowered in LEGACY_OPTIONS:
                name, option = LEGACY_OPTIONS[lowered]
                gathered.setdefault(name, {})[option] = data.pop(key)
                continue
            for name in names:
                if lowered.startswith(f"{_env_word(name).lower()}_"):
                    option = lowered.removeprefix(f"{_env_word(name).lower()}_")
                    gathered.setdefault(name, {})[option] = data.pop(key)
                    break
        data["provider_settings"] = gathered
        return data

    @model_validator(mode="after")
    def _check_provider_settings(self) -> Settings:
        # A mistake in an adapter's variables stops the gateway at start-up, not at its
        # first job. Only adapters something is set for are loaded to check.
        environment = {key.upper() for key in os.environ}
        for name in registry.available_providers():
            prefix = f"CORTEX_{_env_word(name)}_"
            if name in self.provider_settings or any(k.startswith(prefix) for k in environment):
                self.provider_options(name)
        return self

    def provider_options(self, name: str) -> dict[str, Any]:
        """Constructor options for the adapter registered as `name`, from its
        CORTEX_<NAME>_* variables. Raises ProviderSettingsError naming each bad variable."""
        cls = registry.provider_class(name)
        if cls is None:
            return {}
        return self.options_of(name, cls.options_model).arguments()

    def options_of(self, name: str, model: type[OptionsT]) -> OptionsT:
        """`model` filled from the environment (CORTEX_<NAME>_<FIELD>, or a field's own
        aliases) and from options given to Settings, which win."""
        prefix = f"CORTEX_{_env_word(name)}_"
        from_environment = type(
            f"{model.__name__}FromEnvironment",
            (model, BaseSettings),
            {
                "model_config": SettingsConfigDict(
                    env_prefix=prefix, case_sensitive=False, extra="ignore", frozen=True
                )
            },
        )
        try:
            options = from_environment(**self.provider_settings.get(name, {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{_variable(prefix, model, error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
            raise ProviderSettingsError(
                f"invalid settings for provider {name!r}: {problems}"
            ) from None
        return cast(OptionsT, options)

    @property
    def serves_api(self) -> bool:
        return self.role != "engine"

    @property
    def runs_engine(self) -> bool:
        return self.engine_enabled and self.role != "api"

    @property
    def runs_webhooks(self) -> bool:
        return self.webhooks_enabled and self.role != "api"

    @property
    def runs_pruner(self) -> bool:
        return self.role != "api"

    @property
    def worker_count(self) -> int:
        """`workers`, or one per core this process may run on (capped at MAX_WORKERS)."""
        if self.workers is not None:
            return self.workers
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, MAX_WORKERS))

    @field_validator("log_level", "log_format", "role", mode="before")
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
