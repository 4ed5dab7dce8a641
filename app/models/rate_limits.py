"""Each gateway process's count of requests granted per API key (app.rate_limits)."""

from __future__ import annotations

import sqlalchemy as sa

from app.models.base import metadata

rate_limit_usage = sa.Table(
    "rate_limit_usage",
    metadata,
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("process_id", sa.Text, nullable=False),
    # Granted since the process first served the key; only differences are ever used.
    sa.Column("spent", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("key_id", "process_id"),
    # UNLOGGED (see the migration): counts a crash may lose, as they matter for seconds.
    prefixes=["UNLOGGED"],
)
