"""The database schema. Alembic and the repositories import tables from here."""

from cortex_gateway.models.accounts import accounts, api_keys
from cortex_gateway.models.base import metadata
from cortex_gateway.models.batches import job_batches
from cortex_gateway.models.idempotency import idempotency_keys
from cortex_gateway.models.job_templates import job_templates
from cortex_gateway.models.jobs import (
    gateway_secrets,
    job_counts,
    job_events,
    jobs,
    log_lines,
    metric_samples,
)
from cortex_gateway.models.webhooks import webhook_attempts, webhook_deliveries, webhook_endpoints

__all__ = [
    "accounts",
    "api_keys",
    "gateway_secrets",
    "idempotency_keys",
    "job_batches",
    "job_counts",
    "job_events",
    "job_templates",
    "jobs",
    "log_lines",
    "metadata",
    "metric_samples",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
]
