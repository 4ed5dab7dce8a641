"""templates, batches and idempotency keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "job_templates",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_job_templates_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_templates")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_job_templates_account_id_name")),
    )
    op.create_index(
        "ix_job_templates_account_created",
        "job_templates",
        ["account_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "job_batches",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("concurrency >= 1", name=op.f("ck_job_batches_concurrency")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_job_batches_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_batches")),
    )
    op.create_index(
        "ix_job_batches_account_created",
        "job_batches",
        ["account_id", "created_at", "id"],
        unique=False,
    )
    op.add_column("jobs", sa.Column("batch_id", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("batch_index", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("template_id", sa.Text(), nullable=True))
    op.create_foreign_key(
        op.f("fk_jobs_batch_id_job_batches"), "jobs", "job_batches", ["batch_id"], ["id"]
    )
    op.create_index(
        "ix_jobs_batch",
        "jobs",
        ["batch_id", "batch_index"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_batch_waiting",
        "jobs",
        ["batch_id", "batch_index"],
        unique=False,
        postgresql_where=sa.text(
            "batch_id IS NOT NULL AND status = 'pending' AND engine_owner IS NULL"
        ),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_idempotency_keys_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "ix_idempotency_keys_account_created",
        "idempotency_keys",
        ["account_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_account_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_jobs_batch_waiting", table_name="jobs")
    op.drop_index("ix_jobs_batch", table_name="jobs")
    op.drop_constraint(op.f("fk_jobs_batch_id_job_batches"), "jobs", type_="foreignkey")
    op.drop_column("jobs", "template_id")
    op.drop_column("jobs", "batch_index")
    op.drop_column("jobs", "batch_id")
    op.drop_index("ix_job_batches_account_created", table_name="job_batches")
    op.drop_table("job_batches")
    op.drop_index("ix_job_templates_account_created", table_name="job_templates")
    op.drop_table("job_templates")
