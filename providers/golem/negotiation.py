"""Placing a Golem job on the market: collect the offers the demand draws, counter-propose
to those the job can afford, agree with the cheapest provider that answers, and wait for its
approval. Each call to `negotiate`/`approve` takes one step on a copy of the handle and
returns it (see adapter.py for why).

A provider may send an offer (`Initial`) and never answer the counter-proposal; yagna refuses
an agreement on an `Initial` proposal (409). So the choice waits for answers (`Draft`s whose
`prevProposalId` is our counter), a few polls past the first, and takes the cheapest.
"""

from __future__ import annotations

import logging
from typing import Any

from providers.errors import HandleNotFound, Unavailable
from providers.golem import market, phases
from providers.golem.yagna import MARKET, Yagna, YagnaError
from providers.types import (
    FailureReason,
    Handle,
    WorkloadState,
    WorkloadStatus,
)

logger = logging.getLogger(__name__)


class Negotiator:
    def __init__(self, yagna: Yagna, budget: float, poll: float, glm_usd: float) -> None:
        self._yagna = yagna
        self.budget = budget
        self.poll = poll
        self.glm_usd = glm_usd

    async def negotiate(self, handle: Handle) -> WorkloadStatus:
        try:
            events = await self._yagna.call(
                "GET",
                f"{MARKET}/demands/{handle['demandId']}/events",
                params={"timeout": 0, "maxEvents": 100},
            )
        except YagnaError as exc:
            if exc.status in (404, 410):
                raise HandleNotFound(f"golem: the demand {handle['demandId']} is gone") from exc
            raise Unavailable(f"golem: reading offers failed: {exc.message}") from exc
        notes = [note for event in events or [] if (note := await self._on_market(handle, event))]
        offers = handle["offers"]
        answered = [o for o in offers.values() if o.get("draft")]
        now = phases.now()
        if answered and handle["firstAnswerAt"] is None:
            handle["firstAnswerAt"] = now
        window_over = (
            handle["firstAnswerAt"] is not None
            and now - handle["firstAnswerAt"] >= phases.OFFER_WINDOW_POLLS * self.poll
        )
        if answered and (window_over or len(answered) == len(offers)):
            chosen = min(answered, key=lambda o: o["glm"])
            note = await self._propose_agreement(handle, chosen)
            return phases.at(handle, notes=(*notes, note))
        if now > handle["deadline"]:
            seen, waited = len(offers), phases.NO_OFFERS_POLLS * self.poll
            return WorkloadStatus(
                WorkloadState.FAILED,
                reason=FailureReason.NO_OFFERS,
                message=(
                    f"No Golem provider offered to run it within {waited:.0f}"
                    f" s for at most {self.budget} GLM ({seen} acceptable offers countered, "
                    "none answered). Raise CORTEX_GOLEM_BUDGET or ask for fewer resources."
                ),
                handle=handle,
                notes=tuple(notes),
            )
        return phases.at(handle, notes=tuple(notes))

    async def _on_market(self, handle: Handle, event: dict[str, Any]) -> str | None:
        offers: dict[str, dict[str, Any]] = handle["offers"]
        if event.get("eventType") == "ProposalRejectedEvent":
            for issuer, countered in list(offers.items()):
                if countered.get("ours") == event.get("proposalId"):
                    del offers[issuer]
                    return f"{countered['name']} rejected the counter-proposal"
            return None
        proposal = event.get("proposal")
        if event.get("eventType") != "ProposalEvent" or not isinstance(proposal, dict):
            return None
        issuer = str(proposal.get("issuerId"))
        properties = proposal.get("properties") or {}
        prev = proposal.get("prevProposalId")
        offer = offers.get(issuer)
        name = str(properties.get("golem.node.id.name") or issuer)
        if prev and proposal.get("state") == "Draft":
            # A provider's answer to one of our counters. yagna hands each event out once,
            # so the counter may be unknown here (sent in a call whose handle a crash lost):
            # any answer is a negotiated proposal all the same.
            price = self._price(handle, properties)
            if price is None:
                offers.pop(issuer, None)
                return None
            if offer is None or prev != offer.get("ours"):
                offer = offers[issuer] = {"name": name, "offer": None, "ours": prev}
            offer.update(draft=proposal["proposalId"], glm=price[0], pricing=price[1])
            return None
        if proposal.get("state") != "Initial" or prev:
            return None
        price = self._price(handle, properties)
        if price is None:
            return None
        if len(offers) >= phases.MAX_OFFERS:
            dearest = max(offers, key=lambda key: offers[key]["glm"])
            if offers[dearest]["glm"] <= price[0]:
                return None
            del offers[dearest]
        try:
            ours = await self._yagna.call(
                "POST",
                f"{MARKET}/demands/{handle['demandId']}/proposals/{proposal['proposalId']}",
                json_body=handle["demand"],
            )
        except YagnaError as exc:
            logger.info("golem: counter-proposal to %s failed: %s", issuer, exc.message)
            return None
        offers[issuer] = {
            "name": name,
            "offer": proposal["proposalId"],
            "ours": str(ours),
            "draft": None,
            "glm": price[0],
            "pricing": price[1],
        }
        return None

    def _price(
        self, handle: Handle, properties: dict[str, Any]
    ) -> tuple[float, dict[str, Any]] | None:
        """(worst-case GLM for the job's duration, pricing) when the offer is acceptable."""
        pricing = market.pricing(properties)
        if pricing is None:
            return None
        threads = int(properties.get("golem.inf.cpu.threads") or handle["threads"])
        if threads < handle["threads"]:
            return None
        glm = pricing.worst_case(handle["duration"], handle["threads"])
        if glm > self.budget:
            return None
        return round(glm, 9), pricing.as_json()

    async def _propose_agreement(self, handle: Handle, offer: dict[str, Any]) -> str:
        valid_to = phases.iso(
            phases.now() + handle["duration"] + market.PLACEMENT_ALLOWANCE_SECONDS
        )
        try:
            agreement_id = await self._yagna.call(
                "POST",
                f"{MARKET}/agreements",
                json_body={"proposalId": offer["draft"], "validTo": valid_to},
            )
        except YagnaError as exc:
            if exc.status >= 500:
                raise Unavailable(f"golem: creating the agreement failed: {exc.message}") from exc
            # 409: not negotiated after all; 410: the proposal expired or was taken.
            self._drop(handle, offer)
            return f"{offer['name']}'s proposal could not become an agreement: {exc.message}"
        handle.update(
            phase="confirming",
            agreementId=str(agreement_id),
            agreedAt=phases.iso(phases.now() - 60),
            provider=offer["name"],
            pricing=offer["pricing"],
            estimateGlm=offer["glm"],
        )
        hourly = market.Pricing.from_json(offer["pricing"]).worst_case(3600, handle["threads"])
        return (
            f"Agreement proposed to {offer['name']}: at most {offer['glm']:.6f} GLM for the job "
            f"(~{hourly * self.glm_usd:.4f} USD/h at full load)."
        )

    def _drop(self, handle: Handle, offer: dict[str, Any]) -> None:
        for issuer, candidate in list(handle["offers"].items()):
            if candidate is offer or candidate.get("draft") == offer.get("draft"):
                del handle["offers"][issuer]

    def back_to_market(self, handle: Handle) -> None:
        """The chosen provider fell through: negotiate on with the others."""
        for issuer, offer in list(handle["offers"].items()):
            if offer.get("name") == handle.get("provider"):
                del handle["offers"][issuer]
        for key in ("agreementId", "provider", "pricing", "estimateGlm", "activityId"):
            handle.pop(key, None)
        handle.update(
            phase="negotiating",
            deadline=max(handle["deadline"], phases.now() + phases.OFFER_WINDOW_POLLS * self.poll),
        )

    async def approve(self, handle: Handle) -> WorkloadStatus:
        agreement = handle["agreementId"]
        if handle["phase"] == "confirming":
            try:
                await self._yagna.call(
                    "POST",
                    f"{MARKET}/agreements/{agreement}/confirm",
                    params={"appSessionId": handle["job"]},
                )
            except YagnaError as exc:
                state = await self._agreement_state(agreement)
                if state not in ("Pending", "Approved"):
                    self.back_to_market(handle)
                    return phases.at(handle, notes=(f"Agreement not confirmed: {exc.message}",))
            handle["phase"] = "approving"
        wait = min(self.poll, 5.0)
        try:
            await self._yagna.call(
                "POST",
                f"{MARKET}/agreements/{agreement}/wait",
                params={"timeout": wait},
                wait=wait,
            )
        except YagnaError as exc:
            if exc.status == 408:  # not yet: ask again on the next call
                return phases.at(handle)
            if exc.status >= 500:
                raise Unavailable(f"golem: waiting for approval failed: {exc.message}") from exc
            provider = handle["provider"]
            self.back_to_market(handle)
            return phases.at(handle, notes=(f"{provider} did not approve: {exc.message}",))
        handle["phase"] = "activating"
        # The agreed price: the worst case for the job's duration at full load, start price
        # included, spread over the duration (its cost then accrues by the hour like USD).
        return phases.at(
            handle,
            notes=(f"Agreement approved by {handle['provider']}.",),
            price=phases.rate(handle["estimateGlm"], handle["duration"], self.glm_usd),
        )

    async def _agreement_state(self, agreement_id: str) -> str | None:
        try:
            found = await self._yagna.call("GET", f"{MARKET}/agreements/{agreement_id}")
        except YagnaError as exc:
            if exc.status == 404:
                return None
            raise Unavailable(f"golem: reading agreement failed: {exc.message}") from exc
        return str(found.get("state"))
