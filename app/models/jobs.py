"""Jobs and their event timeline."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.models.base import created_at, metadata

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("image", sa.Text, nullable=False),
    sa.Column("cpu", sa.Integer, nullable=False),
    sa.Column("memory", sa.Text, nullable=False),
    sa.Column("storage", sa.Text, nullable=False),
    sa.Column("duration", sa.Integer, nullable=False),
    # env, ports, volumes, command, args: the rest of the specification, as submitted.
    sa.Column("config", postgresql.JSONB, nullable=False),
    # exitCode, outputUrl, reason, message: what the run produced.
    sa.Column("results", postgresql.JSONB, nullable=False),
    sa.Column("cost_current", sa.Numeric(18, 6), nullable=False, server_default="0"),
    sa.Column("cost_projected", sa.Numeric(18, 6), nullable=False, server_default="0"),
    created_at(),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint(
        "status IN ('pending', 'scheduled', 'running', 'completed', 'failed',"
        " 'cancelling', 'cancelled')",
        name="status",
    ),
    # The list endpoint pages by (sort column, created_at, id) within one account.
    sa.Index("ix_jobs_account_created", "account_id", "created_at", "id"),
    sa.Index("ix_jobs_account_status_created", "account_id", "status", "created_at", "id"),
    sa.Index("ix_jobs_account_provider_created", "account_id", "provider", "created_at", "id"),
    sa.Index("ix_jobs_account_started", "account_id", "started_at", "created_at", "id"),
    sa.Index("ix_jobs_account_ended", "account_id", "ended_at", "created_at", "id"),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    # Per-job sequence number: streams resume after it (Last-Event-ID).
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("data", postgresql.JSONB),
    sa.Column(
        "timestamp", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.PrimaryKeyConstraint("job_id", "seq"),
)

# The account-wide event stream reads events in (txid, id) order, and only those of
# transactions older than every transaction still running: ids are handed out before commit,
# so ordering by id alone could pass over an event that commits late.
job_events.append_column(sa.Column("account_id", sa.Text))
job_events.append_column(sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False))
job_events.append_column(
    sa.Column(
        "txid",
        sa.BigInteger,
        nullable=False,
        server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
    )
)
job_events.append_constraint(sa.Index("ix_job_events_account_txid_id", "account_id", "txid", "id"))

# Secrets every gateway process on the database shares (the stream-token signing key).
gateway_secrets = sa.Table(
    "gateway_secrets",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    created_at(),
)

# Running totals for the list endpoint's `meta.pagination.total`: counting a million rows on
# every page is too slow, so triggers on `jobs` append signed deltas here (no row is updated in
# place, so concurrent submissions never wait on one another) and `compact_job_counts()` folds
# them back into one row per group.
job_counts = sa.Table(
    "job_counts",
    metadata,
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Index("ix_job_counts_account_id_status_provider", "account_id", "status", "provider"),
)

# What the engine keeps about a job while it drives it.
ENGINE_COLUMNS = (
    # The provider adapter's handle (container id, dseq, agreement...), stored once submitted.
    sa.Column("handle", postgresql.JSONB),
    # Set with the handle, cleared once the provider released everything the workload held.
    sa.Column("needs_release", sa.Boolean, nullable=False, server_default=sa.false()),
    # Where the next log read starts (owned by the adapter) and the last stored line's seq.
    sa.Column("log_cursor", sa.Text),
    sa.Column("log_seq", sa.BigInteger, nullable=False, server_default="0"),
    # Bytes of log text stored, and what was counted but not stored past the per-job cap;
    # updated in the transaction that inserts the lines.
    sa.Column("log_bytes_stored", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("log_lines_dropped", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("log_bytes_dropped", sa.BigInteger, nullable=False, server_default="0"),
    # The engine process driving the job and until when its claim holds.
    sa.Column("engine_owner", sa.Text),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    # The accepted quote, for cost.current (accrued) and cost.projected.
    sa.Column("usd_per_hour", sa.Numeric(18, 6), nullable=False, server_default="0"),
    # The same price in the network's own unit, when it has one:
    # {"denom", "amount", "unit", "unitsPerHour"} (Akash: uact per block).
    sa.Column("native_price", postgresql.JSONB),
    # Where exposed ports answer while the job runs: [{"port", "url"}].
    sa.Column("endpoints", postgresql.JSONB, nullable=False, server_default="[]"),
    # Failed submit attempts in a row and since when (the submit timeout runs from there).
    sa.Column("submit_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("submit_failing_since", sa.DateTime(timezone=True)),
)
for _column in ENGINE_COLUMNS:
    jobs.append_column(_column)

# Spending budgets (app.accounts.budgets): the key that submitted the job, so a key's spend
# can be summed, and the cost the job holds against its budgets while it is unfinished (its
# projection at submission: for `auto`, the dearest candidate it may land on).
jobs.append_column(sa.Column("api_key_id", sa.Text))
jobs.append_column(
    sa.Column("cost_reserved", sa.Numeric(18, 6), nullable=False, server_default="0")
)
jobs.append_constraint(sa.Index("ix_jobs_api_key_created", "api_key_id", "created_at"))
jobs.append_constraint(
    sa.Index(
        "ix_jobs_unfinished",
        "created_at",
        postgresql_where=sa.text(
            "status IN ('pending', 'scheduled', 'running', 'cancelling') OR needs_release"
        ),
    )
)

log_lines = sa.Table(
    "log_lines",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stream", sa.Text, nullable=False),
    sa.Column("line", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("job_id", "seq"),
)

metric_samples = sa.Table(
    "metric_samples",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cpu_millicores", sa.Float),
    sa.Column("memory_bytes", sa.BigInteger),
    sa.Column("network_rx_bytes", sa.BigInteger),
    sa.Column("network_tx_bytes", sa.BigInteger),
    sa.PrimaryKeyConstraint("job_id", "timestamp"),
)

# What the retention policy removed from a finished job (app/retention.py): a job whose logs
# were pruned answers 410 rather than an empty list. The index finds finished jobs still due.
for _pruned in ("logs_pruned_at", "metrics_pruned_at", "events_pruned_at"):
    jobs.append_column(sa.Column(_pruned, sa.DateTime(timezone=True)))
jobs.append_constraint(
    sa.Index(
        "ix_jobs_retention_due",
        "ended_at",
        postgresql_where=sa.text(
            "logs_pruned_at IS NULL OR metrics_pruned_at IS NULL OR events_pruned_at IS NULL"
        ),
    )
)

# Progress and status messages (app/jobs/progress.py): what the workload reported of itself in
# `::cortex` lines, or what the gateway says while the job waits; the output URL a workload
# declared; and the throttle's state: when the last `progress` event was written, and whether
# the columns changed since (a trailing event then follows once the interval has passed), and
# how many `progress` events the job has (capped).
jobs.append_column(sa.Column("progress", sa.SmallInteger))
jobs.append_column(sa.Column("status_message", sa.Text))
jobs.append_column(sa.Column("output_url", sa.Text))
jobs.append_column(sa.Column("progress_reported_at", sa.DateTime(timezone=True)))
jobs.append_column(
    sa.Column("progress_unsent", sa.Boolean, nullable=False, server_default=sa.false())
)
jobs.append_column(sa.Column("progress_events", sa.Integer, nullable=False, server_default="0"))
jobs.append_constraint(
    sa.CheckConstraint("progress IS NULL OR progress BETWEEN 0 AND 100", name="progress")
)

# The active-jobs quota (app/accounts/active_jobs.py): the place each active job holds in its
# account's quota. Unique among the account's active jobs, so with every place below the limit
# no more jobs than the limit can be active, however many submissions insert at once; a job
# leaves the index when it stops being active, which frees its place. NULL for jobs that
# finished before places existed.
ACTIVE_STATUSES = ("pending", "scheduled", "running")


def is_active(status: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """`status IN ('pending', 'scheduled', 'running')` with the values written out, as the
    index's predicate is: a query must say so literally for the planner to use the index (or
    for ON CONFLICT to find it), which bound parameters would not."""
    return status.in_([sa.literal_column(f"'{name}'") for name in ACTIVE_STATUSES])


jobs.append_column(sa.Column("quota_slot", sa.BigInteger))
jobs.append_constraint(
    sa.Index(
        "ix_jobs_account_quota_slot",
        "account_id",
        "quota_slot",
        unique=True,
        postgresql_where=sa.text("status IN ('pending', 'scheduled', 'running')"),
    )
)
