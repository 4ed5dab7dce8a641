"""account_limits (per-account overrides of the default limits) and stream_leases

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 01:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_limits",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("rate_burst", sa.Integer(), nullable=True),
        sa.Column("max_active_jobs", sa.Integer(), nullable=True),
        sa.Column("max_jobs_per_batch", sa.Integer(), nullable=True),
        sa.Column("max_streams_per_key", sa.Integer(), nullable=True),
        sa.Column("max_webhook_endpoints", sa.Integer(), nullable=True),
        sa.Column("max_templates", sa.Integer(), nullable=True),
        sa.Column("max_engine_slots", sa.Integer(), nullable=True),
        sa.Column("budget_usd", sa.Numeric(14, 4), nullable=True),
        sa.Column("budget_period", sa.Text(), nullable=True),
        sa.Column("allowed_providers", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_limits_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_limits")),
    )
    op.create_table(
        "stream_leases",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("process", sa.Text(), nullable=False),
        sa.Column(
            "heartbeat_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_stream_leases_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_leases")),
    )
    op.create_index(op.f("ix_stream_leases_key_id"), "stream_leases", ["key_id"])
    op.create_index(op.f("ix_stream_leases_process"), "stream_leases", ["process"])


def downgrade() -> None:
    op.drop_table("stream_leases")
    op.drop_table("account_limits")
