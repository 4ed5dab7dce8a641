"""account_limits.max_engine_slots: the per-account cap the engine's fair claim reads

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 01:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_limits",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("max_engine_slots", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )


def downgrade() -> None:
    op.drop_table("account_limits")
