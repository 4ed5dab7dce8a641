"""active-jobs quota slots: each active job holds a place, unique within its account

A submission takes a free place in [0, max_active_jobs) instead of counting the account's
active jobs under its lock: the unique partial index lets at most max_active_jobs of them be
active at once, and inserts of different places never wait on each other
(app/accounts/active_jobs.py). Active jobs already stored get places 0, 1, 2... per account;
finished jobs need none (they leave the index), so the column stays NULL for them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 03:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "status IN ('pending', 'scheduled', 'running')"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("quota_slot", sa.BigInteger(), nullable=True))
    op.execute(
        f"""
        UPDATE jobs SET quota_slot = numbered.place
        FROM (
            SELECT id, row_number() OVER (PARTITION BY account_id ORDER BY created_at, id) - 1
                AS place
            FROM jobs WHERE {ACTIVE}
        ) AS numbered
        WHERE jobs.id = numbered.id
        """
    )
    op.create_index(
        "ix_jobs_account_quota_slot",
        "jobs",
        ["account_id", "quota_slot"],
        unique=True,
        postgresql_where=sa.text(ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_account_quota_slot", table_name="jobs")
    op.drop_column("jobs", "quota_slot")
