"""The steps of a Golem job, as the handle names them and the engine sees them, and the
timings between them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from providers.types import (
    Handle,
    NativePrice,
    Quote,
    WorkloadState,
    WorkloadStatus,
)

# negotiating -> confirming -> approving -> activating -> activated -> deploying -> running
PHASE_STATES = {
    "negotiating": WorkloadState.PENDING,
    "confirming": WorkloadState.PENDING,
    "approving": WorkloadState.PENDING,
    "activating": WorkloadState.PENDING,
    "activated": WorkloadState.STARTING,
    "deploying": WorkloadState.STARTING,
    "running": WorkloadState.RUNNING,
}
# Phases whose next step needs no waiting.
IMMEDIATE = {"confirming", "activating", "activated"}

# Timings, in polls of CORTEX_GOLEM_POLL_INTERVAL (2 s by default):
OFFER_WINDOW_POLLS = 5  # after the first provider answered, wait this long for cheaper ones
NO_OFFERS_POLLS = 60  # no provider answered in this long: the job fails with no_offers
INVOICE_WAIT_POLLS = 75  # after terminating, wait this long for the provider's invoice
STATE_CHECK_POLLS = 5  # how often a running activity's state is read
MAX_OFFERS = 8  # offers countered at once (the cheapest)


# What the job's status message says in each phase before the command runs.
PHASE_WAITING = {
    "confirming": "agreeing with {provider}",
    "approving": "waiting for {provider} to approve the agreement",
    "activating": "starting an activity on {provider}",
    "activated": "deploying the image on {provider}",
    "deploying": "deploying the image on {provider}",
}


def waiting(handle: Handle) -> str | None:
    """The job's status message in the handle's phase (None once it runs)."""
    phase = handle["phase"]
    if phase == "negotiating":
        offers = handle.get("offers") or {}
        answered = sum(1 for offer in offers.values() if offer.get("draft"))
        if not offers:
            return "looking for offers"
        return f"negotiating with {len(offers)} offers, {answered} answered"
    text = PHASE_WAITING.get(phase)
    return text.format(provider=handle.get("provider") or "the provider") if text else None


def at(handle: Handle, **fields: Any) -> WorkloadStatus:
    """The workload's status in the handle's phase, carrying the (new) handle."""
    fields.setdefault("waiting", waiting(handle))
    return WorkloadStatus(PHASE_STATES[handle["phase"]], handle=handle, **fields)


def now() -> float:
    return time.time()


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rate(glm: float, seconds: int, glm_usd: float) -> Quote:
    """`glm` spread over `seconds`, as GLM and USD per hour."""
    glm_per_hour = glm * 3600 / max(seconds, 1)
    amount = f"{glm_per_hour:.9f}".rstrip("0").rstrip(".") or "0"
    return Quote(
        usd_per_hour=round(glm_per_hour * glm_usd, 6),
        native_amount=round(glm_per_hour, 9),
        native_unit="GLM/h",
        native=NativePrice("GLM", amount, "hour", 1.0),
    )
