"""A job's summary as the API shows it: the one place its JSON is built.

GET /jobs answers a page of these; GET /jobs/{id}, the answers of POST /jobs and cancel, and
webhook documents start from the same dict (app.jobs.service.to_job adds the rest), so the
shapes cannot drift. `schemas.JobSummary` documents it in the OpenAPI document.

Built straight from the stored columns into JSON values, with no model per job: what is
stored already satisfies the schema (it was validated on the way in), and a list page is
serialized once, whole. Times are `utc_iso` text, costs floats, the native cost decimal text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.envelope import utc_iso

# The stored columns a summary reads: all a list page selects.
COLUMNS = (
    "id",
    "provider",
    "status",
    "image",
    "cpu",
    "memory",
    "storage",
    "duration",
    "created_at",
    "started_at",
    "ended_at",
    "cost_current",
    "cost_projected",
    "usd_per_hour",
    "native_price",
    "endpoints",
    "template_id",
    "batch_id",
    "progress",
    "status_message",
)

# States whose cost still accrues: computed from the rate at read time, not stored.
_ACCRUING = frozenset({"running", "cancelling"})
_QUANTUM = Decimal("0.000001")


def job_summary(job: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The summary of a stored job (a row, or any mapping of `COLUMNS`), its running cost
    as of `now` (timezone-aware)."""
    current = current_cost(job, now)
    cost: dict[str, Any] = {
        "current": current,
        "projected": float(job["cost_projected"]),
        "currency": "USD",
    }
    if job["native_price"]:
        cost["native"] = _native_cost(job, current)
    return {
        "id": job["id"],
        "provider": job["provider"],
        "status": str(job["status"]),
        "image": job["image"],
        "cpu": job["cpu"],
        "memory": job["memory"],
        "storage": job["storage"],
        "duration": job["duration"],
        "createdAt": utc_iso(job["created_at"]),
        "startedAt": utc_iso(job["started_at"]),
        "endedAt": utc_iso(job["ended_at"]),
        "cost": cost,
        "endpoints": [
            {"port": endpoint["port"], "url": endpoint["url"]} for endpoint in job["endpoints"]
        ],
        "templateId": job["template_id"],
        "batchId": job["batch_id"],
        "progress": job["progress"],
        "statusMessage": job["status_message"],
    }


def current_cost(job: Mapping[str, Any], now: datetime) -> float:
    """Accrued cost: stored once a job ends; while it runs, the quote's rate times the time
    since it started (computed here, so that the engine need not write it every second)."""
    started_at = job["started_at"]
    if started_at is not None and job["status"] in _ACCRUING:
        hours: float = (now - started_at).total_seconds() / 3600
        return round(float(job["usd_per_hour"]) * max(hours, 0.0), 6)
    return float(job["cost_current"])


def _native_cost(job: Mapping[str, Any], current_usd: float) -> dict[str, str]:
    """The same costs in the network's unit (Akash: uact), at the accepted price's exchange
    rate (USD and native amounts accrue over the same time), as decimal strings."""
    price = job["native_price"]
    usd_per_hour = float(job["usd_per_hour"])
    per_hour = Decimal(price["amount"]) * Decimal(str(price["unitsPerHour"]))
    hours = Decimal(str(current_usd / usd_per_hour)) if usd_per_hour else Decimal(0)
    return {
        "denom": price["denom"],
        "amount": str((per_hour * hours).quantize(_QUANTUM)),
        "projected": str((per_hour * job["duration"] / 3600).quantize(_QUANTUM)),
        "price": price["amount"],
        "unit": price["unit"],
    }
