"""jobs.submit_attempts, jobs.submit_failing_since: the engine's submit retries

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 01:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("submit_attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("jobs", sa.Column("submit_failing_since", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("jobs", "submit_failing_since")
    op.drop_column("jobs", "submit_attempts")
