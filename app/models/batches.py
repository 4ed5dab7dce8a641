"""Batches: jobs submitted together, run at most `concurrency` at a time."""

from __future__ import annotations

import sqlalchemy as sa

from app.models.base import created_at, metadata
from app.models.jobs import jobs

job_batches = sa.Table(
    "job_batches",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    created_at(),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("concurrency >= 1", name="concurrency"),
    sa.Index("ix_job_batches_account_created", "account_id", "created_at", "id"),
)

jobs.append_column(sa.Column("batch_id", sa.Text, sa.ForeignKey("job_batches.id")))
# The job's position in the batch's request: jobs start in that order.
jobs.append_column(sa.Column("batch_index", sa.Integer))
jobs.append_constraint(
    sa.Index(
        "ix_jobs_batch",
        "batch_id",
        "batch_index",
        postgresql_where=sa.text("batch_id IS NOT NULL"),
    )
)
# The engine's claim looks for batches with jobs no engine has taken yet.
jobs.append_constraint(
    sa.Index(
        "ix_jobs_batch_waiting",
        "batch_id",
        "batch_index",
        postgresql_where=sa.text(
            "batch_id IS NOT NULL AND status = 'pending' AND engine_owner IS NULL"
        ),
    )
)
