"""engine state, logs and metrics

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:20:15.141902
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "log_lines",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_log_lines_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name=op.f("pk_log_lines")),
    )
    op.create_table(
        "metric_samples",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu_millicores", sa.Float(), nullable=True),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("network_rx_bytes", sa.BigInteger(), nullable=True),
        sa.Column("network_tx_bytes", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_metric_samples_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "timestamp", name=op.f("pk_metric_samples")),
    )
    op.add_column(
        "jobs", sa.Column("handle", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column(
        "jobs",
        sa.Column("needs_release", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("jobs", sa.Column("log_cursor", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("log_seq", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("engine_owner", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "jobs",
        sa.Column(
            "usd_per_hour", sa.Numeric(precision=18, scale=6), server_default="0", nullable=False
        ),
    )
    op.add_column(
        "jobs",
        sa.Column(
            "endpoints",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
    )
    op.create_index(
        "ix_jobs_unfinished",
        "jobs",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text(
            "status IN ('pending', 'scheduled', 'running', 'cancelling') OR needs_release"
        ),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_jobs_unfinished",
        table_name="jobs",
        postgresql_where=sa.text(
            "status IN ('pending', 'scheduled', 'running', 'cancelling') OR needs_release"
        ),
    )
    op.drop_column("jobs", "endpoints")
    op.drop_column("jobs", "usd_per_hour")
    op.drop_column("jobs", "lease_expires_at")
    op.drop_column("jobs", "engine_owner")
    op.drop_column("jobs", "log_seq")
    op.drop_column("jobs", "log_cursor")
    op.drop_column("jobs", "needs_release")
    op.drop_column("jobs", "handle")
    op.drop_table("metric_samples")
    op.drop_table("log_lines")
