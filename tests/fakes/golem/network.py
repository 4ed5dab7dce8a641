"""The fake yagna: a requestor daemon with its market, activity and payment services
(market.py, activity.py, payment.py over the shared state in daemon.py and records.py), and
the providers it reaches. HTTP lives in `app.py`; these modules are the behaviour.

What it reproduces (golem.md in the shared reference, with its sources):
- a demand is matched against each provider's offer (both sides' constraints) and answered
  with an `Initial` proposal; a counter-proposal gets the provider's `Draft` back (or nothing,
  from a provider that never answers); an agreement on an `Initial` proposal is refused (409);
- confirm -> `Pending`, approval after a delay, so `wait` answers 408 before 204;
  an agreement without an activity for `idle_agreement_seconds` is terminated by the provider;
- an activity runs an ExeScript batch (deploy, start, run): `run` starts the entry point as a
  real process, its output captured as the `capture` field asks; results are long-polled as
  ExeScriptCommandResult lists or streamed as runtime events over SSE (live only: a late
  subscriber sees what happens after it subscribed, as in yagna);
- a debit note every `debit_note_interval` seconds per activity, which must be accepted within
  the negotiated `golem.com.payment.debit-notes.accept-timeout?` or the provider terminates the
  agreement; an invoice once an agreement ends; both must be accepted against a live
  allocation for the right amount;
- a provider that vanishes: its exe-unit stops answering (GSB "endpoint address not found"),
  the activity reads as Terminated;
- terminate twice: 410 "Can't update Agreement state from Terminated to Terminated".
"""

from __future__ import annotations

from typing import Any

from tests.fakes.golem.activity import Activities
from tests.fakes.golem.market import Market
from tests.fakes.golem.payment import Payments
from tests.fakes.golem.records import (
    CPU_SEC,
    DURATION_SEC,
    FakeError,
    ProviderNode,
    Timing,
)

__all__ = ["CPU_SEC", "DURATION_SEC", "FakeError", "FakeYagna", "ProviderNode", "Timing"]


class FakeYagna(Market, Activities, Payments):
    """The whole daemon, plus the Golem registry's image lookup and inspection for tests."""

    # -- registry ------------------------------------------------------------------------------

    def image_info(self, tag: str | None, hash_: str | None) -> dict[str, Any]:
        if tag is not None:
            sha3 = self.images.get(tag)
            if sha3 is None:
                raise FakeError(404, "Image not found")
        elif hash_ is not None and hash_ in self.images.values():
            sha3 = hash_
        else:
            raise FakeError(404, "Image not found")
        return {"http": f"http://registry.golem.network/download/{sha3}", "sha3": sha3}

    # -- inspection (tests) --------------------------------------------------------------------

    def held(self, job_id: str) -> list[str]:
        """What the daemon still holds for a job: its demand (tagged `cortex.job`), the
        allocation the demand names, agreements not ended, activities not terminated."""
        found: list[str] = []
        for demand in self.demands.values():
            if demand.properties.get("cortex.job") != job_id:
                continue
            if demand.active:
                found.append(f"demand {demand.id}")
            allocation = demand.properties.get("cortex.allocation")
            if allocation in self.allocations and allocation not in self.released:
                found.append(f"allocation {allocation}")
            for agreement in self.agreements.values():
                if agreement.demand is not demand:
                    continue
                gone = agreement.provider.vanished  # nothing is billed by a vanished provider
                if agreement.state in ("Proposal", "Pending", "Approved") and not gone:
                    found.append(f"agreement {agreement.id} ({agreement.state})")
                for activity_id in agreement.activities:
                    activity = self.activities[activity_id]
                    if activity.state != "Terminated" and not agreement.provider.vanished:
                        found.append(f"activity {activity_id} ({activity.state})")
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "demands": [d.id for d in self.demands.values() if d.active],
            "allocations": [a for a in self.allocations if a not in self.released],
            "agreements": {a.id: a.state for a in self.agreements.values()},
            "activities": {a.id: a.state for a in self.activities.values()},
            "debitNotes": {n["debitNoteId"]: n["status"] for n in self.debit_notes.values()},
            "invoices": {i["invoiceId"]: i["status"] for i in self.invoices.values()},
        }
