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
