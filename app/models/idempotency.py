"""Idempotency keys: the first response to a keyed request, replayed to its retries."""

from __future__ import annotations

import sqlalchemy as sa

from app.models.base import created_at, metadata

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    # SHA-256 of the method, the path and the canonical JSON body: what "the same request" means.
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    # The response, stored by the same transaction that made what it describes.
    sa.Column("status_code", sa.Integer),
    sa.Column("response_body", sa.Text),
    created_at(),
    # The primary key is what makes two concurrent requests with one key wait for each other.
    sa.PrimaryKeyConstraint("account_id", "key"),
    sa.Index("ix_idempotency_keys_account_created", "account_id", "created_at"),
)
