"""The state of the fake Akash network: deployments, bids, leases, and the workloads its
providers run.

A provider "runs" a service by starting its command and args as a local process (the image is
not pulled; its command must exist on this machine, as `/bin/sh` does). Like Kubernetes on a
real provider, it restarts a process that exits, after a short back-off, and keeps the
service's log across restarts. Time moves by the clock: bids arrive `bid_delay` seconds after
a deployment is created, a leased service is ready `start_delay` seconds after its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from providers.akash import sdl as sdl_module

OWNER = "akash1fakeowner0000000000000000000000000000000"
GENESIS = time.time() - 6.098 * 1_000_000
RESTART_BACKOFF = 0.5
DEFAULT_PROVIDERS = (
    ("akash1provider0cheap000000000000000000000000", 900.0),
    ("akash1provider1pricey00000000000000000000000", 1500.0),
    ("akash1provider2dear0000000000000000000000000", 4000.0),
)


def height() -> int:
    return int((time.time() - GENESIS) / 6.098)


@dataclass
class Provider:
    address: str
    price: float
    reachable: bool = True
    host_uri: str = ""


@dataclass
class Bid:
    provider: str
    bseq: int
    price: str
    created_at: int
    state: str = "open"


@dataclass
class Workload:
    """A service's process (restarted when it exits) and its log."""

    argv: list[str]
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    grew: asyncio.Condition = field(default_factory=asyncio.Condition)
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            if self.argv:
                self.process = await asyncio.create_subprocess_exec(
                    *self.argv,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env={**os.environ, **self.env},
                    start_new_session=True,
                )
                assert self.process.stdout is not None
                async for raw in self.process.stdout:
                    await self._append(raw.decode(errors="replace").rstrip("\n"))
                await self.process.wait()
            else:
                await asyncio.sleep(3600)  # the image's own entrypoint: a service that idles
            self.restarts += 1
            await asyncio.sleep(RESTART_BACKOFF)

    async def _append(self, line: str) -> None:
        async with self.grew:
            self.lines.append(line)
            self.grew.notify_all()

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        async with self.grew:
            self.grew.notify_all()


@dataclass
class Lease:
    provider: str
    gseq: int
    oseq: int
    bseq: int
    price: str
    created_at: int
    created: float
    state: str = "active"
    closed_on: int = 0
    reason: str | None = None


@dataclass
class Deployment:
    dseq: str
    sdl: dict[str, Any]
    manifest: str
    version: str
    created: float
    created_at: int
    max_price: float
    state: str = "active"
    order: str = "open"
    bids: list[Bid] = field(default_factory=list)
    lease: Lease | None = None
    workload: Workload | None = None
    escrow: str = "open"

    @property
    def job_id(self) -> str | None:
        for service in self.sdl["services"].values():
            for entry in service.get("env") or []:
                name, _, value = str(entry).partition("=")
                if name == sdl_module.JOB_ID_ENV:
                    return value
        return None


class SdlError(ValueError):
    pass


def validate(text: str) -> dict[str, Any]:
    """The parts of Akash's SDL validation the gateway's SDLs meet."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SdlError(f"Invalid YAML: {exc}") from exc
    problems = []
    if not isinstance(document, dict):
        raise SdlError("SDL must be a mapping")
    if str(document.get("version")) not in ("2.0", "2.1"):
        problems.append("version must be 2.0 or 2.1")
    services = document.get("services") or {}
    profiles = document.get("profiles") or {}
    deployments = document.get("deployment") or {}
    if not services:
        problems.append("services is required")
    global_exposes = 0
    for name, service in services.items():
        if not service.get("image"):
            problems.append(f"services.{name}.image is required")
        for entry in service.get("expose") or []:
            global_exposes += sum(1 for to in entry.get("to") or [] if to.get("global"))
        if name not in deployments:
            problems.append(f"service {name} has no deployment")
    if services and not global_exposes:
        problems.append("at least one service must be exposed globally")
    for name, placements in deployments.items():
        for placement, entry in (placements or {}).items():
            compute = (profiles.get("compute") or {}).get(entry.get("profile"))
            pricing = ((profiles.get("placement") or {}).get(placement) or {}).get("pricing") or {}
            if compute is None:
                problems.append(f"deployment.{name}.{placement}: unknown compute profile")
            if entry.get("profile") not in pricing:
                problems.append(f"deployment.{name}.{placement}: no pricing")
    if problems:
        raise SdlError(", ".join(problems))
    return document


class Network:
    def __init__(
        self, *, bid_delay: float = 0.3, start_delay: float = 0.2, bid_spacing: float = 0.0
    ) -> None:
        self.bid_delay = bid_delay
        self.bid_spacing = bid_spacing
        self.start_delay = start_delay
        self.providers = {address: Provider(address, price) for address, price in DEFAULT_PROVIDERS}
        self.deployments: dict[str, Deployment] = {}
        self._last_dseq = 0
        # Faults, each spent by the requests it hits (set them directly or via /_fake routes).
        self.rate_limited = 0
        self.failing = 0
        self.withdraw_next_bid = False
        self.close_next_order = False
        # Creates committed and then answered with a dropped connection (the answer is lost).
        self.drop_create_answers = 0
        # An account with managed deposits (the default) needs no `deposit` on a create;
        # without them Console refuses a create that has none.
        self.managed_deposits = True
        self.deposits: dict[str, float] = {}
        # Console refuses the bids listing (400) while this is set, as it does a malformed query.
        self.refuse_bids = False
        # Closes (DELETE /v1/deployments/{dseq}) answered 500 before the close is committed,
        # as when the chain's transaction fails upstream.
        self.failing_closes = 0
        # Console mints provider tokens for at most this long (None: the ttl asked for).
        self.max_jwt_ttl: float | None = None
        self.jwt_secret = secrets.token_bytes(32)

    def create(self, text: str) -> Deployment:
        document = validate(text)
        # Console forces the managed wallet's denomination on every price.
        for placement in document["profiles"]["placement"].values():
            for price in placement["pricing"].values():
                price["denom"] = sdl_module.DENOM
        prices = [
            float(price["amount"])
            for placement in document["profiles"]["placement"].values()
            for price in placement["pricing"].values()
        ]
        manifest = sdl_module.manifest(document)
        # dseq is Console's clock in milliseconds.
        dseq = max(int(time.time() * 1000), self._last_dseq + 1)
        self._last_dseq = dseq
        deployment = Deployment(
            dseq=str(dseq),
            sdl=document,
            manifest=manifest,
            version=sdl_module.version(manifest),
            created=time.monotonic(),
            created_at=height(),
            max_price=min(prices),
        )
        self.deployments[deployment.dseq] = deployment
        return deployment

    def bids(self, deployment: Deployment) -> list[Bid]:
        """Providers whose price is within the maximum bid, the first once `bid_delay` has
        passed and each next one `bid_spacing` seconds later (0: all at once)."""
        if deployment.state != "active" or deployment.order != "open":
            return deployment.bids
        age = time.monotonic() - deployment.created
        bidding = [
            (index, p)
            for index, p in enumerate(self.providers.values())
            if p.price <= deployment.max_price
        ]
        known = {bid.provider for bid in deployment.bids}
        for place, (index, p) in enumerate(bidding):
            if p.address not in known and age >= self.bid_delay + place * self.bid_spacing:
                deployment.bids.append(Bid(p.address, index + 1, f"{p.price:.18f}", height()))
        return deployment.bids

    def lease_status(self, deployment: Deployment) -> dict[str, Any] | None:
        lease = deployment.lease
        if lease is None or lease.state != "active":
            return None
        if not self.providers[lease.provider].reachable:
            return None  # Console could not ask the provider
        ready = time.monotonic() - lease.created >= self.start_delay
        name = next(iter(deployment.sdl["services"]))
        service = deployment.sdl["services"][name]
        uris, forwarded = [], []
        for entry in service.get("expose") or []:
            if not any(to.get("global") for to in entry.get("to") or []):
                continue
            external = entry.get("as") or entry["port"]
            if external == 80 and str(entry.get("proto") or "tcp").lower() == "tcp":
                uris.append(
                    f"{deployment.dseq}-{name}.ingress.{lease.provider[-8:]}.fake-akash.test"
                )
            else:
                forwarded.append(
                    {
                        "port": external,
                        "externalPort": 30000 + int(deployment.dseq) % 2000 + len(forwarded),
                        "host": f"{lease.provider[-8:]}.fake-akash.test",
                        "available": 1 if ready else 0,
                    }
                )
        count = 1 if ready else 0
        return {
            "services": {
                name: {
                    "name": name,
                    "available": count,
                    "total": 1,
                    "uris": uris,
                    "observed_generation": 1,
                    "replicas": 1,
                    "updated_replicas": 1,
                    "ready_replicas": count,
                    "available_replicas": count,
                }
            },
            "forwarded_ports": {name: forwarded} if forwarded else {},
            "ips": {},
        }

    def start_workload(self, deployment: Deployment) -> None:
        service = next(iter(deployment.sdl["services"].values()))
        argv = [*(service.get("command") or []), *(service.get("args") or [])]
        env = dict(str(item).partition("=")[::2] for item in service.get("env") or [])
        deployment.workload = Workload(argv, env)
        deployment.workload.start()

    async def close(self, deployment: Deployment) -> None:
        if deployment.state == "closed":
            return
        deployment.state = "closed"
        deployment.order = "closed"
        for bid in deployment.bids:
            if bid.state == "open":
                bid.state = "closed"
        lease = deployment.lease
        if lease is not None and lease.state != "closed":
            # The owner's close ends a lease in any state; one the chain already ended for
            # lack of funds keeps that reason.
            if lease.state == "active" or lease.reason is None:
                lease.reason = "lease_closed_owner"
            lease.state = "closed"
            lease.closed_on = height()
        if deployment.workload is not None:
            await deployment.workload.stop()

    async def end_lease(self, deployment: Deployment, state: str) -> None:
        """The chain or the provider moves a running lease on: `insufficient_funds` (the
        escrow is overdrawn; the provider tears the workload down, the deployment stays
        active until its owner closes it) or `reclaiming` (the provider takes the lease back;
        the workload still runs until it does)."""
        lease = deployment.lease
        assert lease is not None and lease.state == "active"
        lease.state = state
        if state == "insufficient_funds":
            lease.reason = "lease_closed_reason_insufficient_funds"
            deployment.escrow = "overdrawn"
            if deployment.workload is not None:
                await deployment.workload.stop()

    async def aclose(self) -> None:
        for deployment in self.deployments.values():
            await self.close(deployment)

    def held(self, job_id: str) -> list[str]:
        """What still runs or bills for `job_id`."""
        found = []
        for deployment in self.deployments.values():
            if deployment.job_id != job_id:
                continue
            if deployment.state == "active":
                found.append(f"deployment {deployment.dseq}")
            if deployment.workload is not None and deployment.workload.alive:
                found.append(f"workload of {deployment.dseq}")
        return found
