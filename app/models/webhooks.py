"""Webhook endpoints, the outbox of deliveries, and every attempt to send one."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.models.base import created_at, metadata

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("events", postgresql.ARRAY(sa.Text), nullable=False),
    # Kept as given (`whsec_` or a plain secret): deliveries are signed with it, so it cannot be
    # a hash.
    sa.Column("secret", sa.Text, nullable=False),
    # After a rotation the previous secret also signs, until it expires.
    sa.Column("previous_secret", sa.Text),
    sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("disabled_reason", sa.Text),
    # Set by the first failure after a success; an endpoint failing too long is disabled.
    sa.Column("failing_since", sa.DateTime(timezone=True)),
    created_at(),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("ix_webhook_endpoints_account_created", "account_id", "created_at", "id"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    # Sent as webhook-id: receivers deduplicate on it.
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column(
        "endpoint_id",
        sa.Text,
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("job_id", sa.Text),
    # The exact JSON body, fixed when the event happened.
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column(
        "next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    created_at(),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
    sa.Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
    sa.Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
    # Retention removes old deliveries oldest first, a batch at a time.
    sa.Index("ix_webhook_deliveries_created", "created_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "delivery_id",
        sa.Text,
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("response_body", sa.Text),
)
