"""Akash through the Console API (managed wallet): SDL -> deployment -> bids -> lease ->
status -> close, with logs from the provider's lease websocket.

How a job moves on Akash, step by step (each resumable from the handle alone):
- `submit`: build the SDL; if a deployment with this job's manifest is already active (a
  gateway died between creating it and storing the handle), take it; else create one,
  exactly once (`deployments.py`: a create whose answer is lost is found, not repeated).
- `status` while bidding: cheapest open bid (ties: the earliest), lease; a bid that closed
  meanwhile -> the next one; an order that closed -> a new deployment; nothing open within
  the bid timeout -> `no_bids` (deployment closed).
- `status` once leased (`lease_status.py`): ready replicas -> running (endpoints from
  the ingress URIs and forwarded ports), lease closed or out of funds -> failed, status
  unknown (`null`) for too long -> failed.
- The end: Akash restarts a service whose process exits, so the SDL runs the job's command
  under a wrapper that prints `cortex-exit <job> <code>` and then idles; the log follower
  sees that line and the job exits with that code. A job without `command` runs until its
  duration or a cancel. `cancel` and `release` close the deployment (idempotent).

Console is polled at most once per `poll_interval` per deployment whatever the engine asks:
answers are kept that long, and `watch` waits until the next poll is due (or a log line or
the exit arrives).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, ClassVar

import httpx

from providers import _http
from providers.akash import lease_status
from providers.akash import sdl as sdl_module
from providers.akash.console import LEASE_TIMEOUT, Console, ConsoleError
from providers.akash.deployments import Creator
from providers.akash.leases import LeaseLog
from providers.akash.options import AkashOptions
from providers.base import Provider
from providers.errors import HandleNotFound, Unavailable
from providers.types import (
    Capabilities,
    FailureReason,
    Handle,
    Health,
    LogBatch,
    MetricSample,
    NativePrice,
    Quote,
    Refusal,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)

logger = logging.getLogger(__name__)

# Console: "Deployments are only ever funded in ACT (1:1 USD)"; 1 ACT = 1 000 000 uact.
USD_PER_UACT = 1e-6
# Console's own block time for prices (deploy-web utils/priceUtils.ts).
BLOCK_SECONDS = 6.098
BLOCKS_PER_HOUR = 3600 / BLOCK_SECONDS
HEALTH_CACHE_SECONDS, UNHEALTHY_CACHE_SECONDS = 30.0, 5.0
HEALTH_TIMEOUT = httpx.Timeout(3.0)
JWT_TTL_SECONDS = 3600
MAX_LOG_LINES_PER_READ = 5_000
# While bidding, bids are polled every interval; whether the deployment itself still exists
# (Console closes lease-less deployments after ten minutes) is asked this seldom.
BIDDING_DEPLOYMENT_CHECK_SECONDS = 30.0


def usd_per_hour(uact_per_block: float) -> float:
    return uact_per_block * USD_PER_UACT * BLOCKS_PER_HOUR


def native_price(amount: str) -> NativePrice:
    return NativePrice(sdl_module.DENOM, amount, "block", BLOCKS_PER_HOUR)


class AkashProvider(Provider):
    name = "akash"
    options_model = AkashOptions
    capabilities: ClassVar[Capabilities] = Capabilities(
        exposed_ports=True,
        command_override=True,
        volumes=False,
        gpus=True,
        pricing=(
            "Providers bid per block in uact (1 ACT = 1 USD, a block every 6.098 s); the gateway "
            "takes the cheapest open bid up to its maximum price (CORTEX_AKASH_MAX_PRICE)."
        ),
    )

    def __init__(
        self,
        *,
        api_key: str | None = None,
        api_url: str = "https://console-api.akash.network",
        bid_timeout: float = 180.0,
        max_price: int = 10_000,
        bid_window: float = 0.0,
        poll_interval: float = 5.0,
        lease_status_timeout: float = 600.0,
        retry_delay: float = 1.0,
        deposit_usd: float | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key or None
        self.api_url = api_url
        self.bid_timeout = bid_timeout
        self.max_price = max_price
        self.bid_window = bid_window
        self.poll_interval = poll_interval
        self.lease_status_timeout = lease_status_timeout
        self.console = Console(api_url, api_key or "", retry_delay=retry_delay)
        # Provider gateways present self-signed certificates.
        self._providers = httpx.AsyncClient(
            verify=False, timeout=_http.DEFAULT_TIMEOUT, headers={"User-Agent": _http.USER_AGENT}
        )
        self._health: tuple[float, Health] | None = None
        self._health_lock = asyncio.Lock()
        self._answers: dict[str, tuple[float, Any]] = {}
        self._logs: dict[str, LeaseLog] = {}
        self._hosts: dict[str, str] = {}
        self._tokens: dict[str, tuple[float, str]] = {}
        self._creator = Creator(self.console, poll_interval, deposit_usd)

    async def aclose(self) -> None:
        for log in list(self._logs.values()):
            await log.aclose()
        self._logs.clear()
        await self.console.aclose()
        await self._providers.aclose()

    # -- capability ----------------------------------------------------------------------------

    def check(self, spec: WorkloadSpec) -> list[Refusal]:
        return super().check(spec) + sdl_module.refusals(spec)

    async def health(self) -> Health:
        if self.api_key is None:
            return Health(
                False,
                "set CORTEX_AKASH_API_KEY to a Console API key",
                configured=False,
            )
        # Submissions ask for health inside their transaction: a burst of them shares one
        # question to Console.
        async with self._health_lock:
            now = time.monotonic()
            if self._health is not None:
                checked_at, health = self._health
                if now - checked_at < (
                    HEALTH_CACHE_SECONDS if health.healthy else UNHEALTHY_CACHE_SECONDS
                ):
                    return health
            health = await self._ask_health()
            self._health = (time.monotonic(), health)
            return health

    async def _ask_health(self) -> Health:
        try:
            # One quick question: submissions wait for this answer.
            balances = await self.console.request(
                "GET", "/v1/balances", attempts=1, timeout=HEALTH_TIMEOUT
            )
            health = Health(True, detail={"apiUrl": self.api_url, "balances": balances})
        except Unavailable as exc:
            health = Health(False, f"the Console API at {self.api_url} is unavailable: {exc}")
        except ConsoleError as exc:
            health = Health(False, f"the Console API refused: {exc.message}")
        return health

    async def quote(self, spec: WorkloadSpec) -> Quote:
        """The most the job can cost: bids above the maximum price are never taken."""
        return Quote(
            usd_per_hour=usd_per_hour(self.max_price),
            native_amount=float(self.max_price),
            native_unit=f"{sdl_module.DENOM}/block",
            native=native_price(str(self.max_price)),
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def _require_key(self) -> None:
        if self.api_key is None:
            raise Unavailable("akash: not configured: set CORTEX_AKASH_API_KEY")

    async def submit(self, spec: WorkloadSpec) -> Handle:
        self._require_key()
        document = sdl_module.build(spec, self.max_price)
        sdl_text = sdl_module.dump(document)
        manifest = sdl_module.manifest(document)
        version = sdl_module.version(manifest)
        handle: Handle = {
            "jobId": spec.job_id,
            "sdl": sdl_text,
            "version": version,
            "waitsForExit": sdl_module.waits_for_exit(spec),
            "exposed": [
                [entry["port"], entry["as"], entry.get("proto", "tcp")]
                for entry in document["services"][sdl_module.SERVICE]["expose"]
                if any(port.expose and port.port == entry["port"] for port in spec.ports)
            ],
            "lease": None,
            "price": None,
            "statusNullSince": None,
            # What the job's timeline has been told: None, "created", "leased", "ready".
            "told": None,
        }
        try:
            existing = await self._find_deployment(version)
        except ConsoleError as exc:
            raise exc.translate() from exc
        if existing is not None:
            # Created by an attempt that died before its handle was stored.
            logger.warning("akash: job %s already has deployment %s", spec.job_id, existing)
            return {**handle, "dseq": existing, "manifest": manifest, "biddingSince": time.time()}
        return {**handle, **await self._create(sdl_text, manifest, version)}

    async def _find_deployment(self, version: str) -> str | None:
        return await self._creator.find(version)

    async def _create(self, sdl_text: str, manifest: str, version: str) -> dict[str, Any]:
        return await self._creator.create(sdl_text, manifest, version)

    async def _fresh(
        self, key: str, path: str, route: str, *, max_age: float | None = None, **kwargs: Any
    ) -> Any:
        """Console's answer for `key`, asked at most once per poll interval (or `max_age`)."""
        kept = self._answers.get(key)
        now = time.monotonic()
        if kept is not None and now - kept[0] < max(max_age or 0.0, self.poll_interval):
            return kept[1]
        answer = await self.console.request("GET", path, route=route, **kwargs)
        self._answers[key] = (time.monotonic(), answer)
        return answer

    async def status(self, handle: Handle) -> WorkloadStatus:
        self._require_key()
        try:
            if handle["lease"] is None:
                status = await self._bidding(handle)
            else:
                status = await self._leased(handle)
        except ConsoleError as exc:
            # A refusal the steps above do not expect (Console answers 4xx to a bad request
            # the same way every time): asking again forever would never end the job.
            if not exc.definitive:
                raise exc.translate() from exc
            status = exc.failed_status()
        if status.state is WorkloadState.FAILED:
            # Nothing may keep billing; release() closes it again if this fails.
            current = status.handle or handle
            try:
                await self._close(current["dseq"])
            except Unavailable as exc:
                logger.warning("akash: closing %s failed, will retry: %s", current["dseq"], exc)
        return status

    async def _bids(self, dseq: str) -> list[dict[str, Any]]:
        bids = await self._fresh(f"bids:{dseq}", "/v1/bids", "GET /v1/bids", params={"dseq": dseq})
        return [item["bid"] for item in bids or []]

    async def _bidding(self, handle: Handle) -> WorkloadStatus:
        dseq = handle["dseq"]
        bids = await self._bids(dseq)
        won = [bid for bid in bids if bid["state"] == "active"]
        if won:
            # A lease was created but its handle never stored: finish that one.
            return await self._lease(handle, won[0], notes=())
        open_bids = sorted(
            (bid for bid in bids if bid["state"] == "open"),
            key=lambda bid: (
                float(bid["price"]["amount"]),
                int(bid.get("created_at") or 0),
                bid["id"]["bseq"],
            ),
        )
        if open_bids and self._collecting(handle):
            return self._collect(handle, open_bids)
        notes: list[str] = []
        for bid in open_bids:
            try:
                return await self._lease(handle, bid, notes=tuple(notes))
            except ConsoleError as exc:
                if exc.bid_not_open:
                    notes.append(f"The bid of {bid['id']['provider']} closed; trying the next.")
                    continue
                if exc.order_not_open:
                    return await self._recreate(handle, exc.message)
                return WorkloadStatus(
                    WorkloadState.FAILED,
                    reason=FailureReason.PROVIDER_ERROR,
                    message=f"Akash could not create the lease: {exc.message}",
                )
        if open_bids:
            # Every open bid closed under us: ask again next time.
            self._answers.pop(f"bids:{dseq}", None)
        else:
            closed = await self._closed_deployment(dseq)
            if closed is not None:
                return await self._replacement(handle) or closed
        if time.time() - handle["biddingSince"] > self.bid_timeout:
            return WorkloadStatus(
                WorkloadState.FAILED,
                reason=FailureReason.NO_BIDS,
                message=(
                    f"No Akash provider bid on deployment {dseq} within {self.bid_timeout:.0f} s "
                    f"at up to {self.max_price} uact per block; raise CORTEX_AKASH_MAX_PRICE or "
                    "ask for less cpu, memory or storage. The deployment was closed."
                ),
            )
        if handle.get("told") is None:
            notes.append(self._created_note(dseq))
            handle = {**handle, "told": "created"}
            return WorkloadStatus(
                WorkloadState.PENDING,
                handle=handle,
                notes=tuple(notes),
                waiting=_waiting_for_bids(open_bids),
            )
        return WorkloadStatus(
            WorkloadState.PENDING, notes=tuple(notes), waiting=_waiting_for_bids(open_bids)
        )

    def _created_note(self, dseq: str) -> str:
        return (
            f"Deployment {dseq} created; waiting up to {self.bid_timeout:.0f} s for bids "
            f"at up to {self.max_price} uact/block."
        )

    def _collect(self, handle: Handle, open_bids: list[dict[str, Any]]) -> WorkloadStatus:
        """Wait for more bids while the bid window lasts (from the first bid seen)."""
        moved = {**handle, "firstBidAt": handle.get("firstBidAt") or time.time()}
        notes: tuple[str, ...] = ()
        if handle.get("told") is None:
            notes, moved["told"] = (self._created_note(handle["dseq"]),), "created"
        return WorkloadStatus(
            WorkloadState.PENDING,
            handle=moved if moved != handle else None,
            notes=notes,
            waiting=_waiting_for_bids(open_bids),
        )

    def _collecting(self, handle: Handle) -> bool:
        """Whether bids are still being collected: `bid_window` seconds from the first one."""
        first = handle.get("firstBidAt")
        return self.bid_window > 0 and (first is None or time.time() - first < self.bid_window)

    async def _lease(
        self, handle: Handle, bid: dict[str, Any], *, notes: tuple[str, ...]
    ) -> WorkloadStatus:
        ident = bid["id"]
        lease = {
            "dseq": str(ident["dseq"]),
            "gseq": ident["gseq"],
            "oseq": ident["oseq"],
            "provider": ident["provider"],
        }
        body = await self.console.request(
            "POST",
            "/v1/leases",
            json={"manifest": handle["manifest"], "leases": [lease]},
            timeout=LEASE_TIMEOUT,
        )
        price = {"denom": bid["price"]["denom"], "amount": str(bid["price"]["amount"])}
        amount = float(price["amount"])
        leased = {
            **handle,
            "lease": lease,
            "price": price,
            "statusNullSince": None,
            "told": "leased",
        }
        self._answers[f"deployment:{lease['dseq']}"] = (time.monotonic(), body)
        note = (
            f"Deployment {lease['dseq']}: took the bid of {lease['provider']} at "
            f"{amount:g} {price['denom']}/block ({usd_per_hour(amount):.4f} USD/h); "
            "lease created and manifest sent."
        )
        status = self._from_deployment(leased, body)
        return dataclasses.replace(
            status,
            handle=status.handle or leased,
            notes=(*notes, note, *status.notes),
            price=self._price(leased),
        )

    def _price(self, handle: Handle) -> Quote | None:
        price = handle.get("price")
        if not price:
            return None
        amount = float(price["amount"])
        return Quote(
            usd_per_hour=usd_per_hour(amount),
            native_amount=amount,
            native_unit=f"{price['denom']}/block",
            native=native_price(price["amount"]),
        )

    async def _recreate(self, handle: Handle, why: str) -> WorkloadStatus:
        await self._close(handle["dseq"])
        created = await self._create(handle["sdl"], handle["manifest"], handle["version"])
        note = (
            f"Deployment {handle['dseq']}'s order closed ({why}); closed it and created "
            f"deployment {created['dseq']}."
        )
        return WorkloadStatus(WorkloadState.PENDING, handle={**handle, **created}, notes=(note,))

    async def _replacement(self, handle: Handle) -> WorkloadStatus | None:
        """The job's deployment closed before any lease: was a new one created for it (by a
        `_recreate` whose answer was lost)? Then carry on with that one."""
        self._creator.forget()
        replacement = await self._find_deployment(handle["version"])
        if replacement is None or replacement == handle["dseq"]:
            return None
        note = (
            f"Deployment {handle['dseq']} closed; carrying on with deployment {replacement}, "
            "created for this job."
        )
        moved = {**handle, "dseq": replacement, "biddingSince": time.time(), "told": "created"}
        return WorkloadStatus(WorkloadState.PENDING, handle=moved, notes=(note,))

    async def _deployment(self, dseq: str, *, max_age: float | None = None) -> dict[str, Any]:
        try:
            body: dict[str, Any] = await self._fresh(
                f"deployment:{dseq}",
                f"/v1/deployments/{dseq}",
                "GET /v1/deployments/{dseq}",
                max_age=max_age,
            )
        except ConsoleError as exc:
            if exc.status == 404:
                raise HandleNotFound(f"akash: deployment {dseq} not found: {exc.message}") from exc
            raise Unavailable(f"akash: reading deployment {dseq} failed: {exc.message}") from exc
        return body

    async def _closed_deployment(self, dseq: str) -> WorkloadStatus | None:
        """While no bid is open: is the deployment still there (Console closes lease-less
        deployments after about ten minutes)?"""
        body = await self._deployment(dseq, max_age=BIDDING_DEPLOYMENT_CHECK_SECONDS)
        if (body.get("deployment") or {}).get("state") == "closed":
            return WorkloadStatus(
                WorkloadState.FAILED,
                reason=FailureReason.PROVIDER_ERROR,
                message=f"Akash deployment {dseq} was closed before any lease.",
            )
        return None

    async def _leased(self, handle: Handle) -> WorkloadStatus:
        body = await self._deployment(handle["lease"]["dseq"])
        return self._from_deployment(handle, body)

    def _from_deployment(self, handle: Handle, body: dict[str, Any]) -> WorkloadStatus:
        log = self._follow(handle)
        status = lease_status.interpret(
            handle,
            body,
            exit_code=log.exit_code if log is not None else None,
            status_timeout=self.lease_status_timeout,
        )
        if status.state is WorkloadState.STARTING:
            lease = (status.handle or handle)["lease"]
            waiting = f"starting on {lease['provider']}" if lease else None
            return dataclasses.replace(status, waiting=waiting)
        return status

    # -- logs ------------------------------------------------------------------------------------

    def _follow(self, handle: Handle) -> LeaseLog | None:
        lease = handle.get("lease")
        if lease is None:
            return None
        log = self._logs.get(lease["dseq"])
        if log is None:
            marker = f"{sdl_module.EXIT_MARKER} {handle['jobId']}"
            log = LeaseLog(
                self._providers,
                lease,
                token=self._token,
                host=self._host,
                exit_marker=marker if handle["waitsForExit"] else None,
            )
            self._logs[lease["dseq"]] = log
        return log

    async def _token(self, provider: str, renew: bool) -> str:
        kept = self._tokens.get(provider)
        if kept is not None and not renew and kept[0] > time.time():
            return kept[1]
        body = await self.console.request(
            "POST",
            "/v1/create-jwt-token",
            json={
                "data": {
                    "ttl": JWT_TTL_SECONDS,
                    "leases": {
                        "access": "granular",
                        "permissions": [
                            {"provider": provider, "access": "scoped", "scope": ["logs", "status"]}
                        ],
                    },
                }
            },
        )
        token = str(body["token"])
        self._tokens[provider] = (time.time() + JWT_TTL_SECONDS - 60, token)
        return token

    async def _host(self, provider: str) -> str:
        if provider not in self._hosts:
            body = await self.console.request(
                "GET", f"/v1/providers/{provider}", route="GET /v1/providers/{address}"
            )
            self._hosts[provider] = str(body["hostUri"])
        return self._hosts[provider]

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        start = int(cursor) if cursor else 0
        log = self._logs.get(handle["lease"]["dseq"]) if handle.get("lease") else None
        if log is None:
            if handle.get("lease") is not None:
                self._follow(handle)
            return LogBatch((), cursor)
        lines = tuple(log.read(start, MAX_LOG_LINES_PER_READ))
        return LogBatch(lines, str(start + len(lines)) if lines or cursor else cursor)

    async def metrics(self, handle: Handle) -> MetricSample | None:
        # The provider's lease status reports replicas, not resource use.
        return None

    # -- the end -------------------------------------------------------------------------------

    async def _close(self, dseq: str) -> None:
        try:
            await self.console.request(
                "DELETE", f"/v1/deployments/{dseq}", route="DELETE /v1/deployments/{dseq}"
            )
        except ConsoleError as exc:
            if exc.status != 404:
                # "Deployment escrow cannot be settled yet" and the like: closing is retried.
                message = f"akash: closing deployment {dseq} failed: {exc.message}"
                raise Unavailable(message) from exc
        self._answers.pop(f"bids:{dseq}", None)
        self._answers.pop(f"deployment:{dseq}", None)

    async def cancel(self, handle: Handle) -> None:
        self._require_key()
        await self._close(handle["dseq"])

    async def release(self, handle: Handle) -> None:
        self._require_key()
        await self._close(handle["dseq"])
        log = self._logs.pop(handle["dseq"], None)
        if log is not None:
            await log.aclose()

    async def watch(self, handle: Handle, max_wait: float) -> None:
        dseq = handle["dseq"]
        # The answer that status() polls for in this phase decides when the next poll is due.
        kept = self._answers.get(f"deployment:{dseq}" if handle.get("lease") else f"bids:{dseq}")
        wait = max_wait
        if kept is not None:
            wait = min(max_wait, max(self.poll_interval - (time.monotonic() - kept[0]), 0.0))
        log = self._logs.get(dseq)
        if log is None:
            await asyncio.sleep(wait)
            return
        # A new line or the exit wakes the engine at once; the Console is not asked sooner.
        log.changed.clear()
        try:
            async with asyncio.timeout(max_wait):
                await log.changed.wait()
        except TimeoutError:
            pass


def _waiting_for_bids(open_bids: list[dict[str, Any]]) -> str:
    """The job's status message while it waits for bids (`open_bids` cheapest first)."""
    if not open_bids:
        return "waiting for bids: none so far"
    cheapest = open_bids[0]["price"]
    return (
        f"waiting for bids: {len(open_bids)} so far, cheapest "
        f"{float(cheapest['amount']):g} {cheapest['denom']}/block"
    )
