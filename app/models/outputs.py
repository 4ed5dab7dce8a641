"""What a job produced: the files its workload left in /cortex/output/, as kept in the
artifact store (app/outputs/)."""

from __future__ import annotations

import sqlalchemy as sa

from app.models.base import created_at, metadata

job_outputs = sa.Table(
    "job_outputs",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    # Where the bytes are in the store (`outputs/<job id>`).
    sa.Column("store_key", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    # The one file's name when the output is a single file; NULL: a tar.gz of them all.
    sa.Column("file_name", sa.Text),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    created_at(),
    sa.CheckConstraint("size_bytes >= 0 AND file_count >= 1", name="sizes"),
    # Retention removes the oldest first.
    sa.Index("ix_job_outputs_created_at", "created_at"),
)
