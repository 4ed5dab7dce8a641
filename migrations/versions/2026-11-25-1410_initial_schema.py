"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 14:10:02.878749
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Statement-level triggers keep job_counts (see app models) in step with jobs: each INSERT,
# UPDATE or DELETE statement appends one signed delta per (account, provider, status) group.
_COUNT_TRIGGERS = [
    """
    CREATE FUNCTION job_counts_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO job_counts (account_id, provider, status, n)
        SELECT account_id, provider, status, count(*) FROM new_rows
        GROUP BY account_id, provider, status;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION job_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO job_counts (account_id, provider, status, n)
        SELECT account_id, provider, status, sum(n) FROM (
            SELECT account_id, provider, status, 1 AS n FROM new_rows
            UNION ALL
            SELECT account_id, provider, status, -1 AS n FROM old_rows
        ) AS changes
        GROUP BY account_id, provider, status HAVING sum(n) <> 0;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION job_counts_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO job_counts (account_id, provider, status, n)
        SELECT account_id, provider, status, -count(*) FROM old_rows
        GROUP BY account_id, provider, status;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_on_insert()
    """,
    """
    CREATE TRIGGER job_counts_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_on_update()
    """,
    """
    CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_on_delete()
    """,
]

_DROP_COUNT_TRIGGERS = [
    "DROP TRIGGER job_counts_delete ON jobs",
    "DROP TRIGGER job_counts_update ON jobs",
    "DROP TRIGGER job_counts_insert ON jobs",
    "DROP FUNCTION job_counts_on_delete()",
    "DROP FUNCTION job_counts_on_update()",
    "DROP FUNCTION job_counts_on_insert()",
]


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
    )
    op.create_table(
        "job_counts",
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_job_counts_account_id_status_provider",
        "job_counts",
        ["account_id", "status", "provider"],
        unique=False,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_api_keys_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_keys_secret_hash")),
    )
    op.create_index(op.f("ix_api_keys_account_id"), "api_keys", ["account_id"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("image", sa.Text(), nullable=False),
        sa.Column("cpu", sa.Integer(), nullable=False),
        sa.Column("memory", sa.Text(), nullable=False),
        sa.Column("storage", sa.Text(), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("results", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "cost_current", sa.Numeric(precision=18, scale=6), server_default="0", nullable=False
        ),
        sa.Column(
            "cost_projected", sa.Numeric(precision=18, scale=6), server_default="0", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'scheduled', 'running', 'completed', 'failed',"
            " 'cancelling', 'cancelled')",
            name=op.f("ck_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_jobs_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(
        "ix_jobs_account_created", "jobs", ["account_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_jobs_account_ended",
        "jobs",
        ["account_id", "ended_at", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_jobs_account_provider_created",
        "jobs",
        ["account_id", "provider", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_jobs_account_started",
        "jobs",
        ["account_id", "started_at", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_jobs_account_status_created",
        "jobs",
        ["account_id", "status", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "job_events",
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "timestamp", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name=op.f("pk_job_events")),
    )
    for statement in _COUNT_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DROP_COUNT_TRIGGERS:
        op.execute(statement)
    op.drop_table("job_events")
    op.drop_index("ix_jobs_account_status_created", table_name="jobs")
    op.drop_index("ix_jobs_account_started", table_name="jobs")
    op.drop_index("ix_jobs_account_provider_created", table_name="jobs")
    op.drop_index("ix_jobs_account_ended", table_name="jobs")
    op.drop_index("ix_jobs_account_created", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_api_keys_account_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_index("ix_job_counts_account_id_status_provider", table_name="job_counts")
    op.drop_table("job_counts")
    op.drop_table("accounts")
