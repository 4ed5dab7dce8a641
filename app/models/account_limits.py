"""Per-account overrides of the operator's default limits (app.accounts.limits).

Only the engine-slot cap is declared here: the engine's claim reads it in SQL. The accounts
model owns this table and adds the other limits beside it.
"""

from __future__ import annotations

import sqlalchemy as sa

from app.models.base import metadata

account_limits = sa.Table(
    "account_limits",
    metadata,
    sa.Column(
        "account_id", sa.Text, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    ),
    # NULL: the operator's default (CORTEX_DEFAULT_MAX_ENGINE_SLOTS).
    sa.Column("max_engine_slots", sa.Integer),
)
