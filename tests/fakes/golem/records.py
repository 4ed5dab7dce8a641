"""What the fake yagna keeps: providers and their offers, demands, proposals, agreements,
activities and their batches, and the timings of the providers' behaviour."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.golem.transfer import VmFiles

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
    # Its ExeUnit fails the batch's deploy (or start) command with this message, as a
    # provider whose download or VM start breaks does; the activity stays as it was.
    deploy_error: str | None = None
    start_error: str | None = None
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
    # A failed upload's retries (yagna's transfer Retry::default: two, after 2 s then 4 s).
    transfer_retry_seconds: tuple[float, ...] = (2.0, 4.0)


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
    # Its VM's filesystem, made by a deploy that declared volumes (tests/fakes/golem/transfer.py).
    files: VmFiles | None = None

    def usage(self) -> dict[str, float]:
        end = self.ended or time.time()
        cpu = self.cpu_seconds + (end - self.run_started if self.run_started else 0.0)
        return {DURATION_SEC: round(end - self.created, 3), CPU_SEC: round(cpu, 3)}

    def usage_vector(self) -> list[float]:
        usage = self.usage()
        return [usage.get(counter, 0.0) for counter in self.agreement.provider.usage_vector]
