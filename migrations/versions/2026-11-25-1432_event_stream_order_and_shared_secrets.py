"""event stream order and shared secrets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:32:36.012448
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_secrets",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_gateway_secrets")),
    )
    op.add_column("job_events", sa.Column("account_id", sa.Text(), nullable=True))
    op.execute(
        "UPDATE job_events SET account_id = jobs.account_id"
        " FROM jobs WHERE jobs.id = job_events.job_id"
    )
    op.add_column(
        "job_events", sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False)
    )
    op.add_column(
        "job_events",
        sa.Column(
            "txid",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_job_events_account_txid_id", "job_events", ["account_id", "txid", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_job_events_account_txid_id", table_name="job_events")
    op.drop_column("job_events", "txid")
    op.drop_column("job_events", "id")
    op.drop_column("job_events", "account_id")
    op.drop_table("gateway_secrets")
