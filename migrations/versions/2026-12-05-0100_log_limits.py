"""jobs.log_bytes_stored, log_lines_dropped, log_bytes_dropped: the per-job log cap's counters

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("log_bytes_stored", "log_lines_dropped", "log_bytes_dropped")


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("jobs", sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    for name in _COLUMNS:
        op.drop_column("jobs", name)
