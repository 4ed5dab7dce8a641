"""Job templates: named, reusable job specifications; and the template a job came from."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.models.base import created_at, metadata
from app.models.jobs import jobs

job_templates = sa.Table(
    "job_templates",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    # A complete job specification (the body of POST /jobs), as submitted.
    sa.Column("config", postgresql.JSONB, nullable=False),
    created_at(),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # Names are unique per account; the constraint, not a prior read, decides a clash.
    sa.UniqueConstraint("account_id", "name"),
    sa.Index("ix_job_templates_account_created", "account_id", "created_at", "id"),
)

# No foreign key: a job keeps saying where it came from after its template is deleted.
jobs.append_column(sa.Column("template_id", sa.Text))
