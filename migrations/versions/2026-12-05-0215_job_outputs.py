"""job_outputs: the files a job's workload left in /cortex/output/, kept in the artifact store

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 02:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_outputs",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("store_key", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "size_bytes >= 0 AND file_count >= 1", name=op.f("ck_job_outputs_sizes")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_outputs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_outputs")),
    )
    op.create_index("ix_job_outputs_created_at", "job_outputs", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_outputs_created_at", table_name="job_outputs")
    op.drop_table("job_outputs")
