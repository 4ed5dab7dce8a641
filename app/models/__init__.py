"""The database schema. Alembic and the repositories import tables from here."""

from app.models.accounts import account_limits, accounts, api_keys, stream_leases
from app.models.base import metadata
from app.models.batches import job_batches
from app.models.idempotency import idempotency_keys
from app.models.job_templates import job_templates
from app.models.jobs import (
    gateway_secrets,
    job_counts,
    job_events,
    jobs,
    log_lines,
    metric_samples,
)
from app.models.outputs import job_outputs
from app.models.rate_limits import rate_limit_usage
from app.models.webhooks import webhook_attempts, webhook_deliveries, webhook_endpoints

__all__ = [
    "account_limits",
    "accounts",
    "api_keys",
    "gateway_secrets",
    "idempotency_keys",
    "job_batches",
    "job_counts",
    "job_events",
    "job_outputs",
    "job_templates",
    "jobs",
    "log_lines",
    "metadata",
    "metric_samples",
    "rate_limit_usage",
    "stream_leases",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
]
