"""rate_limit_usage: each process's count of requests granted per API key

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 01:07:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # UNLOGGED: written several times a second, and worthless after a crash (the counts
    # only matter for the next few seconds), so not worth the write-ahead log.
    op.execute(
        """
        CREATE UNLOGGED TABLE rate_limit_usage (
            key_id text NOT NULL,
            process_id text NOT NULL,
            spent bigint NOT NULL,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (key_id, process_id)
        )
        """
    )


def downgrade() -> None:
    op.drop_table("rate_limit_usage")
