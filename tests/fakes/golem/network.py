"""The state behind the fake yagna: a requestor daemon with its market, activity and payment
services, and the providers it reaches. HTTP lives in `app.py`; this module is the behaviour.

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

import asyncio
import contextlib
import json
import os
import secrets
import signal
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.fakes.golem.constraints import matches

REQUESTOR_ID = "0x" + "a1" * 20
DURATION_SEC = "golem.usage.duration_sec"
CPU_SEC = "golem.usage.cpu_sec"
ACCEPT_TIMEOUT = "golem.com.payment.debit-notes.accept-timeout?"
GSB_NOT_FOUND = (
    "GSB error: remote service at `/net/{node}/exeunit` error: endpoint address not found"
)


def now_iso(moment: float | None = None) -> str:
    stamp = datetime.fromtimestamp(time.time() if moment is None else moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def new_id() -> str:
    return secrets.token_hex(16)


def platform_name(network: str) -> str:
    token = "glm" if network in ("polygon", "mainnet") else "tglm"
    return f"erc20-{network}-{token}"


class FakeError(Exception):
    """An HTTP error answer: status and message (yagna's ErrorMessage body)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ProviderNode:
    name: str
    # Per-second GLM for each counter and the one-time start price, looked up by name.
    prices: dict[str, float]
    start_price: float
    usage_vector: list[str] = field(default_factory=lambda: [CPU_SEC, DURATION_SEC])
    threads: int = 4
    mem_gib: float = 8.0
    storage_gib: float = 40.0
    platforms: list[str] = field(default_factory=lambda: ["erc20-polygon-glm"])
    answers: bool = True  # counter-proposals get a reply
    approves: bool = True
    # The longest debit-note acceptance timeout it allows (yagna providers: at most 4 min).
    max_accept_timeout: float = 240.0
    vanished: bool = False
    node_id: str = field(default_factory=lambda: "0x" + secrets.token_hex(20))

    def offer_properties(self) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "golem.inf.cpu.threads": self.threads,
            "golem.inf.cpu.cores": self.threads,
            "golem.inf.cpu.architecture": "x86_64",
            "golem.inf.mem.gib": self.mem_gib,
            "golem.inf.storage.gib": self.storage_gib,
            "golem.runtime.name": "vm",
            "golem.runtime.version": "0.4.2",
            "golem.runtime.capabilities": ["inet", "vpn", "manifest-support"],
            "golem.node.id.name": self.name,
            "golem.node.debug.subnet": "public",
            "golem.com.scheme": "payu",
            "golem.com.scheme.payu.debit-note.interval-sec?": 120,
            "golem.com.pricing.model": "linear",
            "golem.com.pricing.model.linear.coeffs": [
                *[self.prices.get(counter, 0.0) for counter in self.usage_vector],
                self.start_price,
            ],
            "golem.com.usage.vector": list(self.usage_vector),
            "golem.activity.caps.transfer.protocol": ["http", "https", "gftp"],
        }
        for platform in self.platforms:
            properties[f"golem.com.payment.platform.{platform}.address"] = self.node_id
        return properties

    def refuses(self, demand: dict[str, Any], now: float) -> str | None:
        """Why this provider's negotiator drops a demand (None: it proposes)."""
        expiration = demand.get("golem.srv.comp.expiration")
        if not isinstance(expiration, int | float):
            return "no golem.srv.comp.expiration"
        if expiration / 1000 < now + 5 * 60:
            return "expiration sooner than 5 minutes"
        if ACCEPT_TIMEOUT not in demand and expiration / 1000 > now + 30 * 60:
            return "expiration later than 30 minutes without debit-note acceptance"
        if not str(demand.get("golem.srv.comp.task_package", "")).startswith("hash:sha3:"):
            return "no task package"
        if not any(f"golem.com.payment.platform.{p}.address" in demand for p in self.platforms):
            return "no payment platform in common"
        return None

    def cost(self, usage: dict[str, float]) -> float:
        return self.start_price + sum(
            price * usage.get(counter, 0.0) for counter, price in self.prices.items()
        )


@dataclass
class Timing:
    deploy_seconds: float = 0.2
    respond_seconds: float = 0.05
    approve_seconds: float = 0.3
    debit_note_interval: float = 120.0
    idle_agreement_seconds: float = 90.0
    ping_seconds: float = 15.0
    invoice_seconds: float = 0.05


@dataclass
class Proposal:
    id: str
    subscription: str
    issuer: str  # a provider's node id, or REQUESTOR_ID
    state: str
    properties: dict[str, Any]
    constraints: str
    provider: ProviderNode
    prev: str | None = None
    timestamp: str = field(default_factory=now_iso)
    agreement: str | None = None

    def document(self) -> dict[str, Any]:
        doc = {
            "proposalId": self.id,
            "issuerId": self.issuer,
            "state": self.state,
            "properties": self.properties,
            "constraints": self.constraints,
            "timestamp": self.timestamp,
        }
        if self.prev:
            doc["prevProposalId"] = self.prev
        return doc


@dataclass
class Demand:
    id: str
    properties: dict[str, Any]
    constraints: str
    timestamp: str = field(default_factory=now_iso)
    events: list[dict[str, Any]] = field(default_factory=list)
    active: bool = True


@dataclass
class Agreement:
    id: str
    proposal: Proposal
    demand: Demand
    valid_to: str
    state: str = "Proposal"
    app_session_id: str | None = None
    approved_date: str | None = None
    approved_at: float | None = None
    timestamp: str = field(default_factory=now_iso)
    terminated_by: str | None = None
    reason: str | None = None
    activities: list[str] = field(default_factory=list)
    invoiced: bool = False

    @property
    def provider(self) -> ProviderNode:
        return self.proposal.provider

    def accept_timeout(self) -> float | None:
        asked = self.proposal.properties.get(ACCEPT_TIMEOUT)
        return float(asked) if asked is not None else None

    def document(self) -> dict[str, Any]:
        doc = {
            "agreementId": self.id,
            "demand": {
                "properties": self.demand.properties,
                "constraints": self.demand.constraints,
                "demandId": self.demand.id,
                "requestorId": REQUESTOR_ID,
                "timestamp": self.demand.timestamp,
            },
            "offer": {
                "properties": self.proposal.properties,
                "constraints": self.proposal.constraints,
                "offerId": self.proposal.id,
                "providerId": self.provider.node_id,
                "timestamp": self.proposal.timestamp,
            },
            "validTo": self.valid_to,
            "state": self.state,
            "timestamp": self.timestamp,
        }
        if self.approved_date:
            doc["approvedDate"] = self.approved_date
        if self.app_session_id:
            doc["appSessionId"] = self.app_session_id
        return doc


@dataclass
class Batch:
    id: str
    commands: list[dict[str, Any]]
    results: list[dict[str, Any]] = field(default_factory=list)
    subscribers: list[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=list)
    finished: bool = False


@dataclass
class Activity:
    id: str
    agreement: Agreement
    state: str = "Initialized"
    reason: str | None = None
    error_message: str | None = None
    created: float = field(default_factory=time.time)
    ended: float | None = None
    cpu_seconds: float = 0.0
    run_started: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    deployed_package: str | None = None

    def usage(self) -> dict[str, float]:
        end = self.ended or time.time()
        cpu = self.cpu_seconds + (end - self.run_started if self.run_started else 0.0)
        return {DURATION_SEC: round(end - self.created, 3), CPU_SEC: round(cpu, 3)}

    def usage_vector(self) -> list[float]:
        usage = self.usage()
        return [usage.get(counter, 0.0) for counter in self.agreement.provider.usage_vector]


class FakeYagna:
    def __init__(
        self,
        *,
        app_key: str,
        providers: list[ProviderNode],
        images: dict[str, str],
        timing: Timing | None = None,
    ) -> None:
        self.app_key = app_key
        self.providers = providers
        # Registry: tag -> sha3 hash (a hash resolves to itself).
        self.images = images
        self.timing = timing or Timing()
        self.allocations: dict[str, dict[str, Any]] = {}
        self.released: set[str] = set()
        self.demands: dict[str, Demand] = {}
        self.proposals: dict[str, Proposal] = {}
        self.agreements: dict[str, Agreement] = {}
        self.activities: dict[str, Activity] = {}
        self.debit_notes: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.debit_note_events: list[dict[str, Any]] = []
        self.invoice_events: list[dict[str, Any]] = []
        self.accepted: dict[str, Decimal] = {}  # agreement -> highest amount accepted
        self.paid_from: dict[str, str] = {}  # agreement -> the allocation paying for it
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- plumbing ------------------------------------------------------------------------------

    def spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_change(self, deadline: float) -> bool:
        """Until something changes or `deadline` (monotonic); False when it passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
                    return True
        return False

    async def shutdown(self) -> None:
        for activity in self.activities.values():
            await self._kill(activity)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def provider_named(self, name: str) -> ProviderNode:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise FakeError(404, f"no provider {name}")

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

    # -- payment: allocations ------------------------------------------------------------------

    def create_allocation(self, body: dict[str, Any]) -> dict[str, Any]:
        if "totalAmount" not in body:
            raise FakeError(400, "totalAmount is required")
        platform = body.get("paymentPlatform") or "erc20-holesky-tglm"
        if isinstance(platform, dict):
            platform = platform_name(platform.get("network") or "holesky")
        total = Decimal(str(body["totalAmount"]))
        allocation = {
            "allocationId": new_id(),
            "address": body.get("address") or REQUESTOR_ID,
            "paymentPlatform": platform,
            "totalAmount": str(total),
            "spentAmount": "0",
            "remainingAmount": str(total),
            "timestamp": now_iso(),
            "timeout": body.get("timeout"),
            "makeDeposit": False,
        }
        self.allocations[allocation["allocationId"]] = allocation
        return allocation

    def allocation(self, allocation_id: str) -> dict[str, Any]:
        allocation = self.allocations.get(allocation_id)
        if allocation is None or allocation_id in self.released:
            raise FakeError(404, f"Allocation {allocation_id} not found")
        return allocation

    def release_allocation(self, allocation_id: str) -> None:
        self.allocation(allocation_id)
        self.released.add(allocation_id)

    def requestor_accounts(self) -> list[dict[str, Any]]:
        return [
            {
                "platform": platform_name(network),
                "address": REQUESTOR_ID,
                "driver": "erc20",
                "network": network,
                "token": "GLM" if network == "polygon" else "tGLM",
                "send": True,
                "receive": False,
            }
            for network in ("polygon", "holesky", "hoodi")
        ]

    def demand_decorations(self, allocation_ids: list[str]) -> dict[str, Any]:
        properties, constraints = [], []
        for allocation_id in allocation_ids:
            allocation = self.allocation(allocation_id)
            platform = allocation["paymentPlatform"]
            properties.append(
                {
                    "key": f"golem.com.payment.platform.{platform}.address",
                    "value": allocation["address"],
                }
            )
            properties.append({"key": "golem.com.payment.protocol.version", "value": "3"})
            constraints.append(f"(golem.com.payment.platform.{platform}.address=*)")
        return {"properties": properties, "constraints": constraints}

    # -- market --------------------------------------------------------------------------------

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

    # -- activity ------------------------------------------------------------------------------

    async def create_activity(self, agreement_id: str) -> Activity:
        agreement = self.agreement(agreement_id)
        if agreement.provider.vanished:
            raise FakeError(500, GSB_NOT_FOUND.format(node=agreement.provider.node_id))
        if agreement.state != "Approved":
            raise FakeError(
                500,
                f"Agreement {agreement_id} is not Approved. Current state: {agreement.state}",
            )
        if agreement.activities:
            # Providers allow one activity per agreement unless multi-activity was negotiated.
            raise FakeError(500, f"Agreement {agreement_id} already has an activity")
        activity = Activity(new_id(), agreement)
        agreement.activities.append(activity.id)
        self.activities[activity.id] = activity
        self.spawn(self._debit_notes(activity))
        return activity

    def activity(self, activity_id: str) -> Activity:
        activity = self.activities.get(activity_id)
        if activity is None:
            raise FakeError(404, f"Activity [{activity_id}] not found")
        return activity

    def reachable(self, activity: Activity) -> None:
        provider = activity.agreement.provider
        if provider.vanished:
            raise FakeError(500, GSB_NOT_FOUND.format(node=provider.node_id))

    async def destroy(self, activity_id: str) -> None:
        activity = self.activity(activity_id)
        self.reachable(activity)
        if activity.state != "Terminated":
            await self._end_activity(activity, None, None)

    async def _end_activity(
        self, activity: Activity, reason: str | None, message: str | None
    ) -> None:
        activity.state, activity.reason, activity.error_message = "Terminated", reason, message
        if activity.ended is None:
            activity.ended = time.time()
        await self._kill(activity)
        for batch in activity.batches.values():
            for queue in batch.subscribers:
                queue.put_nowait(None)
        await self.notify()

    async def _kill(self, activity: Activity) -> None:
        process = activity.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    async def exec(self, activity_id: str, text: str) -> str:
        activity = self.activity(activity_id)
        self.reachable(activity)
        if activity.state == "Terminated":
            raise FakeError(500, f"Activity [{activity_id}] is Terminated")
        try:
            commands = json.loads(text)
        except ValueError as exc:
            raise FakeError(400, f"ExeScript is not JSON: {exc}") from exc
        if not isinstance(commands, list) or not all(
            isinstance(c, dict) and len(c) == 1 for c in commands
        ):
            raise FakeError(400, "ExeScript must be a list of single-key command objects")
        batch = Batch(new_id(), commands)
        activity.batches[batch.id] = batch
        self.spawn(self._run_batch(activity, batch))
        return batch.id

    def batch(self, activity_id: str, batch_id: str) -> tuple[Activity, Batch]:
        activity = self.activity(activity_id)
        self.reachable(activity)
        batch = activity.batches.get(batch_id)
        if batch is None:
            raise FakeError(404, f"Batch id={batch_id}")
        return activity, batch

    def _emit(self, batch: Batch, index: int, kind: dict[str, Any]) -> None:
        event = {"batch_id": batch.id, "index": index, "timestamp": now_iso(), "kind": kind}
        for queue in batch.subscribers:
            queue.put_nowait(event)

    async def _result(
        self,
        batch: Batch,
        index: int,
        ok: bool,
        *,
        message: str | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        last: bool = False,
    ) -> None:
        result: dict[str, Any] = {
            "index": index,
            "eventDate": now_iso(),
            "result": "Ok" if ok else "Error",
            "isBatchFinished": last or not ok,
        }
        for key, value in (("message", message), ("stdout", stdout), ("stderr", stderr)):
            if value is not None:
                result[key] = value
        batch.results.append(result)
        if result["isBatchFinished"]:
            batch.finished = True
        await self.notify()

    async def _run_batch(self, activity: Activity, batch: Batch) -> None:
        count = len(batch.commands)
        for index, command in enumerate(batch.commands):
            if activity.state == "Terminated":
                return
            (name, body), last = next(iter(command.items())), index == count - 1
            self._emit(batch, index, {"started": {"command": command}})
            try:
                code, message, outputs = await self._command(activity, batch, index, name, body)
            except FakeError as exc:
                code, message, outputs = -1, exc.message, {}
            if activity.state == "Terminated":
                return
            self._emit(batch, index, {"finished": {"return_code": code, "message": message}})
            if code != 0 and message is None:
                message = f"ExeScript command exited with code {code}"
            await self._result(batch, index, code == 0, message=message, last=last, **outputs)
            if code != 0:
                return

    async def _command(
        self, activity: Activity, batch: Batch, index: int, name: str, body: Any
    ) -> tuple[int, str | None, dict[str, str]]:
        if name == "deploy":
            await asyncio.sleep(self.timing.deploy_seconds)
            package = activity.agreement.demand.properties.get("golem.srv.comp.task_package", "")
            sha3 = str(package).split(":")[2] if str(package).count(":") >= 3 else ""
            if sha3 not in self.images.values():
                return 1, f"Deploy failed: cannot download image {package}", {}
            activity.env = {str(k): str(v) for k, v in ((body or {}).get("env") or {}).items()}
            activity.state, activity.deployed_package = "Deployed", package
            return 0, None, {}
        if name == "start":
            if activity.state != "Deployed":
                return 1, "Start: the activity is not deployed", {}
            activity.state = "Ready"
            return 0, None, {}
        if name == "run":
            if activity.state != "Ready":
                return 1, "Run: the activity is not started", {}
            return await self._run(activity, batch, index, body or {})
        if name == "terminate":
            return 0, None, {}
        return 1, f"unsupported command {name!r}", {}

    async def _run(
        self, activity: Activity, batch: Batch, index: int, body: dict[str, Any]
    ) -> tuple[int, str | None, dict[str, str]]:
        entry_point, args = body.get("entry_point"), body.get("args") or []
        if not isinstance(entry_point, str) or not entry_point.startswith("/"):
            return 1, "run: entry_point must be an absolute path in the image", {}
        capture = body.get("capture") or {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **activity.env}
        try:
            process = await asyncio.create_subprocess_exec(
                entry_point,
                *[str(a) for a in args],
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
                # Its own process group, so destroying the activity ends everything it started
                # (as a VM's end would), and its pipes close.
                start_new_session=True,
            )
        except OSError as exc:
            return 127, f"run: cannot start {entry_point}: {exc}", {}
        activity.process, activity.run_started = process, time.time()
        kept: dict[str, list[str]] = {"stdout": [], "stderr": []}

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            mode = capture.get(name)
            while chunk := await stream.read(4096):
                text = chunk.decode(errors="replace")
                if mode is None:
                    continue  # no capture: output discarded, as yagna's exe-unit does
                kept[name].append(text)
                if "stream" in mode:
                    self._emit(batch, index, {name: text})

        assert process.stdout is not None and process.stderr is not None
        await asyncio.gather(pump(process.stdout, "stdout"), pump(process.stderr, "stderr"))
        code = await process.wait()
        activity.cpu_seconds += time.time() - activity.run_started
        activity.run_started, activity.process = None, None
        outputs = {name: "".join(parts) for name, parts in kept.items() if capture.get(name)}
        return code, None, outputs

    async def batch_results(
        self, activity_id: str, batch_id: str, timeout: float, command_index: int | None
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            _, batch = self.batch(activity_id, batch_id)
            done = batch.finished or (
                command_index is not None
                and any(r["index"] >= command_index for r in batch.results)
            )
            if done or (command_index is None and batch.results and timeout == 0):
                return list(batch.results)
            if not await self.wait_for_change(deadline):
                if command_index is not None:
                    raise FakeError(408, "Timeout waiting for command to finish")
                return list(batch.results)

    def subscribe_batch(self, activity_id: str, batch_id: str) -> asyncio.Queue[Any]:
        activity, batch = self.batch(activity_id, batch_id)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        if activity.state == "Terminated":
            queue.put_nowait(None)
        batch.subscribers.append(queue)
        return queue

    def unsubscribe_batch(self, activity_id: str, batch_id: str, queue: Any) -> None:
        batch = self.activities[activity_id].batches[batch_id]
        with contextlib.suppress(ValueError):
            batch.subscribers.remove(queue)

    def activity_state(self, activity_id: str) -> dict[str, Any]:
        activity = self.activity(activity_id)
        if activity.agreement.provider.vanished:
            # The requestor's daemon keeps what it last knew; the provider's end is gone.
            return {
                "state": ["Terminated", None],
                "reason": "provider unreachable",
                "errorMessage": GSB_NOT_FOUND.format(node=activity.agreement.provider.node_id),
            }
        state: dict[str, Any] = {"state": [activity.state, None]}
        if activity.reason:
            state["reason"] = activity.reason
        if activity.error_message:
            state["errorMessage"] = activity.error_message
        return state

    def activity_usage(self, activity_id: str) -> dict[str, Any]:
        activity = self.activity(activity_id)
        self.reachable(activity)
        return {"currentUsage": activity.usage_vector(), "timestamp": int(time.time())}

    async def vanish(self, provider: ProviderNode) -> None:
        provider.vanished = True
        for activity in self.activities.values():
            if activity.agreement.provider is provider and activity.state != "Terminated":
                if activity.ended is None:
                    activity.ended = time.time()
                await self._kill(activity)
                for batch in activity.batches.values():
                    for queue in batch.subscribers:
                        queue.put_nowait(None)
        await self.notify()

    # -- payment: debit notes and invoices -----------------------------------------------------

    async def _debit_notes(self, activity: Activity) -> None:
        agreement = activity.agreement
        provider = agreement.provider
        previous: str | None = None
        while True:
            await asyncio.sleep(self.timing.debit_note_interval)
            if activity.state == "Terminated" or provider.vanished:
                return
            amount = Decimal(str(round(provider.cost(activity.usage()), 18)))
            note = {
                "debitNoteId": new_id(),
                "issuerId": provider.node_id,
                "recipientId": REQUESTOR_ID,
                "payeeAddr": provider.node_id,
                "payerAddr": REQUESTOR_ID,
                "paymentPlatform": self._platform(agreement),
                "previousDebitNoteId": previous,
                "timestamp": now_iso(),
                "agreementId": agreement.id,
                "activityId": activity.id,
                "totalAmountDue": str(amount),
                "usageCounterVector": activity.usage_vector(),
                "paymentDueDate": None,
                "status": "RECEIVED",
            }
            previous = note["debitNoteId"]
            self.debit_notes[note["debitNoteId"]] = note
            self.debit_note_events.append(
                {
                    "eventType": "DebitNoteReceivedEvent",
                    "eventDate": note["timestamp"],
                    "debitNoteId": note["debitNoteId"],
                }
            )
            await self.notify()
            timeout = agreement.accept_timeout()
            if timeout is not None:
                self.spawn(self._acceptance_deadline(activity, note, timeout))

    async def _acceptance_deadline(
        self, activity: Activity, note: dict[str, Any], timeout: float
    ) -> None:
        await asyncio.sleep(timeout)
        agreement = activity.agreement
        if note["status"] != "ACCEPTED" and agreement.state == "Approved":
            reason = "Requestor didn't accept DebitNote in time"
            await self._terminate(agreement, "Provider", reason)

    def _platform(self, agreement: Agreement) -> str:
        chosen = agreement.demand.properties.get("golem.com.payment.chosen-platform")
        if chosen:
            return str(chosen)
        for platform in agreement.provider.platforms:
            if f"golem.com.payment.platform.{platform}.address" in agreement.demand.properties:
                return platform
        return agreement.provider.platforms[0]

    async def _invoice(self, agreement: Agreement) -> None:
        await asyncio.sleep(self.timing.invoice_seconds)
        if agreement.invoiced or agreement.approved_at is None:
            return
        agreement.invoiced = True
        activities = [self.activities[a] for a in agreement.activities]
        amount = sum(
            (Decimal(str(round(agreement.provider.cost(a.usage()), 18))) for a in activities),
            Decimal(str(agreement.provider.start_price)) if not activities else Decimal(0),
        )
        invoice = {
            "invoiceId": new_id(),
            "issuerId": agreement.provider.node_id,
            "recipientId": REQUESTOR_ID,
            "payeeAddr": agreement.provider.node_id,
            "payerAddr": REQUESTOR_ID,
            "paymentPlatform": self._platform(agreement),
            "timestamp": now_iso(),
            "agreementId": agreement.id,
            "activityIds": list(agreement.activities),
            "amount": str(amount),
            "paymentDueDate": now_iso(time.time() + 3600),
            "status": "RECEIVED",
        }
        self.invoices[invoice["invoiceId"]] = invoice
        self.invoice_events.append(
            {
                "eventType": "InvoiceReceivedEvent",
                "eventDate": invoice["timestamp"],
                "invoiceId": invoice["invoiceId"],
            }
        )
        await self.notify()

    async def events_after(
        self, events: list[dict[str, Any]], after: str | None, timeout: float, max_events: int
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        floor = parse_iso(after) if after else float("-inf")
        while True:
            found = [e for e in events if parse_iso(e["eventDate"]) > floor][:max_events]
            if found or not await self.wait_for_change(deadline):
                return found

    def _accept(self, document: dict[str, Any], amount_key: str, body: dict[str, Any]) -> None:
        allocation = self.allocation(str(body.get("allocationId")))
        if allocation["paymentPlatform"] != document["paymentPlatform"]:
            raise FakeError(400, "allocation is on another payment platform")
        try:
            accepted = Decimal(str(body.get("totalAmountAccepted")))
        except ArithmeticError as exc:
            raise FakeError(400, "totalAmountAccepted must be a decimal") from exc
        if accepted != Decimal(document[amount_key]):
            raise FakeError(400, f"totalAmountAccepted {accepted} != {document[amount_key]}")
        if accepted > Decimal(allocation["totalAmount"]):
            raise FakeError(400, "amount exceeds the allocation")
        document["status"] = "ACCEPTED"
        agreement = document["agreementId"]
        self.paid_from.setdefault(agreement, allocation["allocationId"])
        self.accepted[agreement] = max(self.accepted.get(agreement, Decimal(0)), accepted)
        spent = sum(
            (
                amount
                for agreement_id, amount in self.accepted.items()
                if self.paid_from.get(agreement_id) == allocation["allocationId"]
            ),
            Decimal(0),
        )
        allocation["spentAmount"] = str(spent)
        allocation["remainingAmount"] = str(Decimal(allocation["totalAmount"]) - spent)

    async def accept_debit_note(self, note_id: str, body: dict[str, Any]) -> None:
        note = self.debit_notes.get(note_id)
        if note is None:
            raise FakeError(404, f"DebitNote [{note_id}] not found")
        if note["status"] == "ACCEPTED":
            return
        self._accept(note, "totalAmountDue", body)
        self.debit_note_events.append(
            {
                "eventType": "DebitNoteAcceptedEvent",
                "eventDate": now_iso(),
                "debitNoteId": note_id,
            }
        )
        await self.notify()

    async def accept_invoice(self, invoice_id: str, body: dict[str, Any]) -> None:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise FakeError(404, f"Invoice [{invoice_id}] not found")
        if invoice["status"] == "ACCEPTED":
            return
        self._accept(invoice, "amount", body)
        self.invoice_events.append(
            {"eventType": "InvoiceAcceptedEvent", "eventDate": now_iso(), "invoiceId": invoice_id}
        )
        await self.notify()

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


def default_timing_for_tests() -> Timing:
    return Timing(
        deploy_seconds=0.2,
        respond_seconds=0.05,
        approve_seconds=0.3,
        debit_note_interval=0.5,
        idle_agreement_seconds=90.0,
        ping_seconds=1.0,
        invoice_seconds=0.05,
    )


def valid_to(seconds: float) -> str:
    return now_iso((datetime.now(UTC) + timedelta(seconds=seconds)).timestamp())
