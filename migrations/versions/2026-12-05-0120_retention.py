"""jobs.{logs,metrics,events}_pruned_at: what the retention policy removed from a job

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 01:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DUE = "logs_pruned_at IS NULL OR metrics_pruned_at IS NULL OR events_pruned_at IS NULL"


def upgrade() -> None:
    for column in ("logs_pruned_at", "metrics_pruned_at", "events_pruned_at"):
        op.add_column("jobs", sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_jobs_retention_due",
        "jobs",
        ["ended_at"],
        unique=False,
        postgresql_where=sa.text(_DUE),
    )
    op.create_index(
        "ix_webhook_deliveries_created", "webhook_deliveries", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_created", table_name="webhook_deliveries")
    op.drop_index("ix_jobs_retention_due", table_name="jobs", postgresql_where=sa.text(_DUE))
    for column in ("events_pruned_at", "metrics_pruned_at", "logs_pruned_at"):
        op.drop_column("jobs", column)
