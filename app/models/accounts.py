"""Accounts own jobs; API keys act for one account with a set of scopes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.models.base import created_at, metadata

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    created_at(),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False),
    # Only a SHA-256 of the secret is kept; the key is shown once, when it is created.
    sa.Column("secret_hash", sa.LargeBinary, nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("scopes", postgresql.ARRAY(sa.Text), nullable=False),
    created_at(),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    # A spending budget of the key's own, beside its account's (app.accounts.budgets).
    sa.Column("budget_usd", sa.Numeric(18, 6)),
    sa.Column("budget_period", sa.Text),
    sa.CheckConstraint(
        "(budget_usd IS NULL) = (budget_period IS NULL)"
        " AND (budget_period IS NULL OR budget_period IN ('day', 'month', 'total'))",
        name="budget",
    ),
)

# An operator's overrides of the defaults (settings.default_*), one nullable column per field of
# app.accounts.limits.AccountLimits. NULL: the default applies; 0 (or budget_period "none"):
# explicitly unlimited, whatever the default says.
account_limits = sa.Table(
    "account_limits",
    metadata,
    sa.Column(
        "account_id",
        sa.Text,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("rate_limit", sa.Float),
    sa.Column("rate_burst", sa.Integer),
    sa.Column("max_active_jobs", sa.Integer),
    sa.Column("max_jobs_per_batch", sa.Integer),
    sa.Column("max_streams_per_key", sa.Integer),
    sa.Column("max_webhook_endpoints", sa.Integer),
    sa.Column("max_templates", sa.Integer),
    sa.Column("max_engine_slots", sa.Integer),
    sa.Column("budget_usd", sa.Numeric(14, 4)),
    sa.Column("budget_period", sa.Text),
    sa.Column("allowed_providers", postgresql.ARRAY(sa.Text)),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# Open SSE streams, one row each, so that a quota per key holds across processes. A process
# refreshes its rows' heartbeat while it runs; rows of a process that died go stale and stop
# counting (app.accounts.leases).
stream_leases = sa.Table(
    "stream_leases",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column(
        "account_id",
        sa.Text,
        sa.ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("key_id", sa.Text, nullable=False, index=True),
    sa.Column("process", sa.Text, nullable=False, index=True),
    sa.Column(
        "heartbeat_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)
