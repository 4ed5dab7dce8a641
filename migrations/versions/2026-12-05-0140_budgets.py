"""Spending budgets: a budget per API key, the key that submitted each job, and the cost a
job reserves from its budgets while it is unfinished

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 01:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("budget_usd", sa.Numeric(18, 6), nullable=True))
    op.add_column("api_keys", sa.Column("budget_period", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_api_keys_budget"),
        "api_keys",
        "(budget_usd IS NULL) = (budget_period IS NULL)"
        " AND (budget_period IS NULL OR budget_period IN ('day', 'month', 'total'))",
    )
    op.add_column("jobs", sa.Column("api_key_id", sa.Text(), nullable=True))
    op.add_column(
        "jobs",
        sa.Column("cost_reserved", sa.Numeric(18, 6), nullable=False, server_default="0"),
    )
    op.create_index("ix_jobs_api_key_created", "jobs", ["api_key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_api_key_created", table_name="jobs")
    op.drop_column("jobs", "cost_reserved")
    op.drop_column("jobs", "api_key_id")
    op.drop_constraint(op.f("ck_api_keys_budget"), "api_keys", type_="check")
    op.drop_column("api_keys", "budget_period")
    op.drop_column("api_keys", "budget_usd")
