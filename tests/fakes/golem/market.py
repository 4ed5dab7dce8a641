"""The fake market: demands matched against offers, counter-proposals answered (or not),
agreements confirmed, approved, waited for, cancelled and terminated."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.fakes.golem.constraints import matches
from tests.fakes.golem.daemon import Daemon
from tests.fakes.golem.records import (
    ACCEPT_TIMEOUT,
    GSB_NOT_FOUND,
    REQUESTOR_ID,
    Agreement,
    Demand,
    FakeError,
    Proposal,
    ProviderNode,
    new_id,
    now_iso,
)


class Market(Daemon):
    async def subscribe(self, body: dict[str, Any]) -> str:
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise FakeError(400, "properties must be an object")
        demand = Demand(new_id(), properties, str(body.get("constraints") or ""))
        self.demands[demand.id] = demand
        now = time.time()
        for provider in self.providers:
            offer = provider.offer_properties()
            if provider.vanished or provider.refuses(properties, now) is not None:
                continue
            if not matches(demand.constraints, offer):
                continue
            proposal = Proposal(
                new_id(), demand.id, provider.node_id, "Initial", offer, "", provider
            )
            self.proposals[proposal.id] = proposal
            self._market_event(demand, proposal)
        await self.notify()
        return demand.id

    def demand(self, subscription: str) -> Demand:
        demand = self.demands.get(subscription)
        if demand is None or not demand.active:
            raise FakeError(404, f"Subscription [{subscription}] not found")
        return demand

    def list_demands(self) -> list[dict[str, Any]]:
        return [
            {
                "demandId": d.id,
                "requestorId": REQUESTOR_ID,
                "properties": d.properties,
                "constraints": d.constraints,
                "timestamp": d.timestamp,
            }
            for d in self.demands.values()
            if d.active
        ]

    async def unsubscribe(self, subscription: str) -> None:
        demand = self.demands.get(subscription)
        if demand is None:
            raise FakeError(404, f"Subscription [{subscription}] not found")
        if not demand.active:
            raise FakeError(410, f"Subscription [{subscription}] already unsubscribed")
        demand.active = False
        await self.notify()

    def _market_event(self, demand: Demand, proposal: Proposal) -> None:
        demand.events.append(
            {"eventType": "ProposalEvent", "eventDate": now_iso(), "proposal": proposal.document()}
        )

    async def collect(self, subscription: str, timeout: float, max_events: int) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            demand = self.demand(subscription)
            if demand.events:
                taken, demand.events = demand.events[:max_events], demand.events[max_events:]
                return taken
            if not await self.wait_for_change(deadline):
                return []

    async def counter(self, subscription: str, proposal_id: str, body: dict[str, Any]) -> str:
        demand = self.demand(subscription)
        offer = self.proposals.get(proposal_id)
        if offer is None or offer.subscription != subscription or offer.issuer == REQUESTOR_ID:
            raise FakeError(404, f"Proposal [{proposal_id}] not found")
        if offer.state in ("Rejected", "Expired", "Accepted"):
            raise FakeError(410, f"Proposal [{proposal_id}] is {offer.state}")
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise FakeError(400, "properties must be an object")
        ours = Proposal(
            new_id(),
            subscription,
            REQUESTOR_ID,
            "Draft",
            properties,
            str(body.get("constraints") or ""),
            offer.provider,
            prev=proposal_id,
        )
        self.proposals[ours.id] = ours
        if offer.provider.answers:
            self.spawn(self._provider_answers(demand, ours))
        return ours.id

    async def _provider_answers(self, demand: Demand, ours: Proposal) -> None:
        await asyncio.sleep(self.timing.respond_seconds)
        provider = ours.provider
        if provider.vanished or not demand.active:
            return
        reason = provider.refuses(ours.properties, time.time())
        if reason is not None:
            demand.events.append(
                {
                    "eventType": "ProposalRejectedEvent",
                    "eventDate": now_iso(),
                    "proposalId": ours.id,
                    "reason": {"message": reason},
                }
            )
            await self.notify()
            return
        properties = provider.offer_properties()
        asked = ours.properties.get(ACCEPT_TIMEOUT)
        if asked is not None:
            # Negotiated to the smaller of the two (yagna provider's DebitNoteInterval rules).
            properties[ACCEPT_TIMEOUT] = min(int(asked), int(provider.max_accept_timeout))
        chosen = ours.properties.get("golem.com.payment.chosen-platform")
        if chosen:
            properties["golem.com.payment.chosen-platform"] = chosen
        draft = Proposal(
            new_id(), demand.id, provider.node_id, "Draft", properties, "", provider, prev=ours.id
        )
        self.proposals[draft.id] = draft
        self._market_event(demand, draft)
        await self.notify()

    def create_agreement(self, body: dict[str, Any]) -> str:
        proposal = self.proposals.get(str(body.get("proposalId")))
        if proposal is None or proposal.issuer == REQUESTOR_ID:
            raise FakeError(404, f"Proposal [{body.get('proposalId')}] not found")
        if proposal.state == "Initial":
            raise FakeError(
                409, f"Proposal [{proposal.id}] not negotiated yet: counter-propose first"
            )
        if proposal.agreement is not None or proposal.state != "Draft":
            raise FakeError(410, f"Proposal [{proposal.id}] is {proposal.state}")
        demand = self.demands[proposal.subscription]
        valid_to = body.get("validTo")
        if not isinstance(valid_to, str):
            raise FakeError(400, "validTo is required")
        agreement = Agreement(new_id(), proposal, demand, valid_to)
        proposal.agreement = agreement.id
        proposal.state = "Accepted"
        self.agreements[agreement.id] = agreement
        return agreement.id

    def agreement(self, agreement_id: str) -> Agreement:
        agreement = self.agreements.get(agreement_id)
        if agreement is None:
            raise FakeError(404, f"Agreement [{agreement_id}] not found")
        return agreement

    def list_agreements(self, app_session_id: str | None) -> list[dict[str, Any]]:
        return [
            {
                "id": a.id,
                "creationTs": a.timestamp,
                "approveTs": a.approved_date,
                "role": "Requestor",
            }
            for a in self.agreements.values()
            if app_session_id is None or a.app_session_id == app_session_id
        ]

    async def confirm(self, agreement_id: str, app_session_id: str | None) -> None:
        agreement = self.agreement(agreement_id)
        if agreement.state != "Proposal":
            raise FakeError(409, f"Agreement [{agreement_id}] is {agreement.state}; can't confirm")
        agreement.state = "Pending"
        agreement.app_session_id = app_session_id
        self.spawn(self._provider_decides(agreement))

    async def _provider_decides(self, agreement: Agreement) -> None:
        await asyncio.sleep(self.timing.approve_seconds)
        if agreement.state != "Pending" or agreement.provider.vanished:
            return
        if agreement.provider.approves:
            agreement.state = "Approved"
            agreement.approved_at = time.time()
            agreement.approved_date = now_iso(agreement.approved_at)
            self.spawn(self._idle_watchdog(agreement))
        else:
            agreement.state = "Rejected"
            agreement.reason = "Provider rejected the agreement"
        await self.notify()

    async def _idle_watchdog(self, agreement: Agreement) -> None:
        await asyncio.sleep(self.timing.idle_agreement_seconds)
        if agreement.state == "Approved" and not agreement.activities:
            await self._terminate(agreement, "Provider", "No activity created within idle time")

    async def wait_for_approval(self, agreement_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            agreement = self.agreement(agreement_id)
            if agreement.state == "Approved":
                return
            if agreement.state == "Proposal":
                raise FakeError(409, f"Agreement [{agreement_id}] not confirmed")
            if agreement.state != "Pending":
                raise FakeError(410, f"Agreement [{agreement_id}] {agreement.state}")
            if not await self.wait_for_change(deadline):
                raise FakeError(408, f"Timeout waiting for Agreement [{agreement_id}] approval")

    async def cancel_agreement(self, agreement_id: str) -> None:
        agreement = self.agreement(agreement_id)
        if agreement.state not in ("Proposal", "Pending"):
            raise FakeError(410, f"Agreement [{agreement_id}] is {agreement.state}")
        agreement.state = "Cancelled"
        await self.notify()

    async def terminate(self, agreement_id: str, reason: dict[str, Any] | None) -> None:
        agreement = self.agreement(agreement_id)
        if agreement.provider.vanished:
            raise FakeError(500, GSB_NOT_FOUND.format(node=agreement.provider.node_id))
        if agreement.state == "Terminated":
            raise FakeError(410, "Can't update Agreement state from Terminated to Terminated")
        if agreement.state != "Approved":
            raise FakeError(409, f"Agreement [{agreement_id}] is {agreement.state}")
        message = (reason or {}).get("message") if isinstance(reason, dict) else None
        await self._terminate(agreement, "Requestor", message or "Terminated by requestor")

    async def terminate_as_provider(self, provider: ProviderNode, reason: str) -> None:
        for agreement in list(self.agreements.values()):
            if agreement.provider is provider and agreement.state == "Approved":
                await self._terminate(agreement, "Provider", reason)

    async def _terminate(self, agreement: Agreement, by: str, reason: str) -> None:
        agreement.state = "Terminated"
        agreement.terminated_by = by
        agreement.reason = reason
        for activity_id in agreement.activities:
            activity = self.activities[activity_id]
            if activity.state != "Terminated":
                await self._end_activity(activity, reason, f"Agreement terminated by {by}")
        self.spawn(self._invoice(agreement))
        await self.notify()
