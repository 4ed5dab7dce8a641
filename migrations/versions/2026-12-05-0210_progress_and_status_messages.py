"""Progress and status messages: what a job reports of itself (`::cortex` lines) or the
gateway says while it waits, the output URL a workload declares, and when the last
`progress` event was written and how many were (events are throttled and capped per job)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 02:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("progress", sa.SmallInteger(), nullable=True))
    op.add_column("jobs", sa.Column("status_message", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("output_url", sa.Text(), nullable=True))
    op.add_column(
        "jobs", sa.Column("progress_reported_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "jobs",
        sa.Column("progress_unsent", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "jobs",
        sa.Column("progress_events", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_check_constraint(
        op.f("ck_jobs_progress"), "jobs", "progress IS NULL OR progress BETWEEN 0 AND 100"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_jobs_progress"), "jobs", type_="check")
    op.drop_column("jobs", "progress_events")
    op.drop_column("jobs", "progress_unsent")
    op.drop_column("jobs", "progress_reported_at")
    op.drop_column("jobs", "output_url")
    op.drop_column("jobs", "status_message")
    op.drop_column("jobs", "progress")
