"""The Golem provider: jobs run on the Golem Network through a yagna requestor daemon's REST
APIs (market, activity, payment).

submit() resolves the image through the Golem registry, reserves the job's budget (an
allocation) and publishes a demand. status() then moves placement on one step per call,
returning the new handle each time, so the engine has stored every id before the next step
depends on it: negotiating (collect offers, counter-propose, pick the cheapest that answered)
-> confirming -> approving -> activating -> activated (ExeScript sent) -> deploying -> running.
A step whose effect cannot be looked up again (creating the activity, sending the ExeScript)
is marked in the handle first; finding the mark after a restart means "maybe done", which the
daemon settles: a provider allows one activity per agreement, and an activity that is no
longer fresh already received the script.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from providers.base import Provider
from providers.errors import (
    HandleNotFound,
    ImagePullFailed,
    Rejected,
    Unavailable,
)
from providers.golem import capability, cleanup, market, outputs, phases
from providers.golem.negotiation import Negotiator
from providers.golem.options import GolemOptions
from providers.golem.payments import PaymentDesk
from providers.golem.work import (
    DEPLOY,
    FAILURES_BEFORE_STATE_CHECK,
    RUN,
    BatchFollower,
    exe_script,
    exec_body,
)
from providers.golem.yagna import (
    ACTIVITY,
    MARKET,
    PAYMENT,
    Yagna,
    YagnaError,
)
from providers.spec_file import spec_env
from providers.types import (
    Capabilities,
    FailureReason,
    Handle,
    Health,
    LogBatch,
    MetricSample,
    Quote,
    Refusal,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)

logger = logging.getLogger(__name__)

HEALTH_CACHE_SECONDS = 5.0


class GolemProvider(Provider):
    name = "golem"
    options_model = GolemOptions
    uploads_outputs = True
    capabilities: ClassVar[Capabilities] = Capabilities(
        exposed_ports=False,
        command_override=True,
        volumes=True,
        pricing=(
            "GLM at the cheapest answering provider's linear price (start price, then per "
            "second of wall and CPU time), at most CORTEX_GOLEM_BUDGET per job; USD at "
            "CORTEX_GOLEM_GLM_USD"
        ),
    )

    def __init__(
        self,
        *,
        api_url: str = "http://127.0.0.1:7465",
        app_key: str | None = None,
        payment_network: str = "polygon",
        registry_url: str = "https://registry.golem.network",
        budget: float = 1.0,
        poll_interval: float = 2.0,
        glm_usd: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.api_url = api_url
        self.app_key = app_key or None
        self.network = payment_network
        self.platform = market.payment_platform(payment_network)
        self.budget = budget
        self.poll = poll_interval
        self.glm_usd = glm_usd
        self._yagna = Yagna(api_url, self.app_key, registry_url, transport)
        self._desk = PaymentDesk(self._yagna, poll_interval)
        self._negotiator = Negotiator(self._yagna, budget, poll_interval, glm_usd)
        self._followers: dict[str, BatchFollower] = {}
        self._state_checked: dict[str, float] = {}
        self._usage_seen: dict[str, tuple[float, float]] = {}
        self._health: tuple[float, Health] | None = None

    async def aclose(self) -> None:
        for follower in self._followers.values():
            await follower.stop()
        self._followers.clear()
        await self._desk.aclose()
        await self._yagna.aclose()

    # -- capability ----------------------------------------------------------------------------

    def check(self, spec: WorkloadSpec) -> list[Refusal]:
        return capability.refusals(spec, super().check(spec))

    async def health(self) -> Health:
        if not self.app_key:
            return Health(
                False,
                "CORTEX_GOLEM_APP_KEY is not set (create one with `yagna app-key create`)",
                configured=False,
            )
        now = time.monotonic()
        if self._health is not None and now - self._health[0] < HEALTH_CACHE_SECONDS:
            return self._health[1]
        try:
            accounts = await self._yagna.call("GET", f"{PAYMENT}/requestorAccounts")
            platforms = {a.get("platform") for a in accounts or [] if a.get("send", True)}
            if self.platform in platforms:
                health = Health(True, detail={"apiUrl": self.api_url, "platform": self.platform})
            else:
                health = Health(
                    False,
                    f"yagna has no requestor account on {self.platform}: run "
                    f"`yagna payment init --sender --network {self.network}` and fund it",
                )
        except (Unavailable, YagnaError) as exc:
            health = Health(False, f"yagna at {self.api_url} is unavailable: {exc}")
        self._health = (now, health)
        return health

    async def quote(self, spec: WorkloadSpec) -> Quote:
        """What the job may cost at most: its budget over its duration (prices are only known
        once providers answer the demand; status() reports the agreed one)."""
        return phases.rate(self.budget, spec.duration_seconds, self.glm_usd)

    # -- submit --------------------------------------------------------------------------------

    async def submit(self, spec: WorkloadSpec) -> Handle:
        if not self.app_key:
            raise Unavailable("golem: CORTEX_GOLEM_APP_KEY is not set")
        existing = await self._existing_demand(spec.job_id)
        package = await self._package(spec.image)
        if existing is not None:
            return self._handle(spec, package, existing)
        allocation = await self._create_allocation(spec)
        try:
            decorations = await self._yagna.call(
                "GET",
                f"{PAYMENT}/demandDecorations",
                params={"allocationIds": allocation},
            )
            body = market.demand(spec, package, decorations or {}, self.platform, allocation)
            demand_id = await self._yagna.call("POST", f"{MARKET}/demands", json_body=body)
        except YagnaError as exc:
            await cleanup.release_allocation(self._yagna, allocation)
            raise self._refused("publishing the demand", exc) from exc
        return self._handle(spec, package, {"demandId": str(demand_id), **body})

    async def _existing_demand(self, job_id: str) -> dict[str, Any] | None:
        """The demand an earlier submit() of this job published (a crash before the engine
        stored the handle), so that a second submit adopts it instead of publishing twice."""
        try:
            demands = await self._yagna.call("GET", f"{MARKET}/demands")
        except YagnaError as exc:
            raise self._refused("listing demands", exc) from exc
        for found in demands or []:
            if (found.get("properties") or {}).get(market.JOB_PROPERTY) == job_id:
                return {
                    "demandId": found["demandId"],
                    "properties": found["properties"],
                    "constraints": found.get("constraints", ""),
                }
        return None

    async def _package(self, image: str) -> str:
        info = await self._yagna.image(image)
        if info is None or not info.get("sha3"):
            raise ImagePullFailed(
                f"{image!r} is not on the Golem registry. {capability.GVMKIT_ADVICE}"
            )
        return f"hash:sha3:{info['sha3']}:{info.get('http', '')}"

    async def _create_allocation(self, spec: WorkloadSpec) -> str:
        # Reserved until the job can have ended and been invoiced; yagna frees it after that
        # even if the gateway never comes back to release it.
        lifetime = (
            spec.duration_seconds
            + market.PLACEMENT_ALLOWANCE_SECONDS
            + phases.INVOICE_WAIT_POLLS * self.poll
            + 600
        )
        try:
            allocation = await self._yagna.call(
                "POST",
                f"{PAYMENT}/allocations",
                json_body={
                    "totalAmount": str(self.budget),
                    "paymentPlatform": {"driver": "erc20", "network": self.network},
                    "timeout": phases.iso(phases.now() + lifetime),
                },
            )
        except YagnaError as exc:
            raise self._refused("reserving the budget", exc) from exc
        return str(allocation["allocationId"])

    def _refused(self, doing: str, exc: YagnaError) -> Exception:
        if exc.status >= 500:
            return Unavailable(f"golem: {doing} failed: {exc.message}")
        return Rejected(f"golem: {doing} was refused: {exc.message}")

    def _handle(self, spec: WorkloadSpec, package: str, demand: dict[str, Any]) -> Handle:
        assert spec.command is not None  # check() refuses a spec without one
        properties = demand["properties"]
        return {
            "job": spec.job_id,
            "phase": "negotiating",
            "demandId": demand["demandId"],
            "allocationId": properties[market.ALLOCATION_PROPERTY],
            "demand": {"properties": properties, "constraints": demand["constraints"]},
            "package": package,
            "threads": market.threads(spec),
            "duration": spec.duration_seconds,
            "run": {
                "entryPoint": spec.command[0],
                "args": [*spec.command[1:], *(spec.args or ())],
                "env": {**spec.env, **spec_env(spec)},
                "volumes": outputs.volumes(spec),
            },
            "deadline": phases.now() + phases.NO_OFFERS_POLLS * self.poll,
            "offers": {},
            "firstAnswerAt": None,
        }

    # -- status: one placement step per call ---------------------------------------------------

    async def status(self, handle: Handle) -> WorkloadStatus:
        try:
            return await self._step(handle)
        except YagnaError as exc:
            # The steps settle the answers they expect; any other refusal would be the same
            # on every call.
            if not exc.definitive:
                raise exc.translate() from exc
            return exc.failed_status()

    async def _step(self, handle: Handle) -> WorkloadStatus:
        phase = handle.get("phase")
        if phase == "negotiating":
            return await self._negotiator.negotiate(copy.deepcopy(handle))
        if phase in ("confirming", "approving"):
            return await self._negotiator.approve(copy.deepcopy(handle))
        if phase == "activating":
            return await self._activate(copy.deepcopy(handle))
        if phase == "activated":
            return await self._execute(copy.deepcopy(handle))
        if phase in ("deploying", "running"):
            return await self._follow(copy.deepcopy(handle))
        raise HandleNotFound(f"golem: a handle in an unknown phase {phase!r}")

    async def _activate(self, handle: Handle) -> WorkloadStatus:
        agreement = handle["agreementId"]
        self._desk.register(agreement, handle["allocationId"])
        try:
            created = await self._yagna.call(
                "POST", f"{ACTIVITY}/activity", json_body={"agreementId": agreement}
            )
        except YagnaError as exc:
            if "not approved" in exc.message.lower():
                handle["phase"] = "approving"
                return phases.at(handle)
            # The provider refuses a second activity: one may exist from before a restart,
            # unknown to us. Ending the agreement ends it too; then negotiate again.
            provider = handle["provider"]
            await cleanup.end_agreement(self._yagna, handle["agreementId"])
            self._negotiator.back_to_market(handle)
            return phases.at(
                handle, notes=(f"{provider} would not start an activity: {exc.message}",)
            )
        activity_id = created["activityId"] if isinstance(created, dict) else created
        handle.update(phase="activated", activityId=str(activity_id))
        return phases.at(handle, notes=(f"Activity created on {handle['provider']}.",))

    async def _execute(self, handle: Handle) -> WorkloadStatus:
        state = await self._activity_state(handle)
        states: list[Any] = list(state.get("state") or [])
        current, upcoming, *_ = [*states, None, None]
        if current not in ("New", "Initialized") or upcoming not in (None, "Initialized"):
            # The script was sent before a restart and its batch id was lost: stop the
            # activity rather than run the command a second time.
            await cleanup.destroy_activity(self._yagna, handle["activityId"])
            return WorkloadStatus(
                WorkloadState.FAILED,
                reason=FailureReason.PROVIDER_ERROR,
                message="The gateway stopped while sending the command to the provider; the "
                "activity was stopped rather than risk running the command twice.",
                handle=handle,
            )
        run = handle["run"]
        commands = exe_script(run["entryPoint"], run["args"], run["env"])
        if run.get("volumes"):
            commands[DEPLOY]["deploy"]["volumes"] = run["volumes"]
        try:
            batch = await self._yagna.call(
                "POST",
                f"{ACTIVITY}/activity/{handle['activityId']}/exec",
                json_body=exec_body(commands),
            )
        except YagnaError as exc:
            if exc.status >= 500 and not exc.provider_unreachable:
                raise Unavailable(f"golem: sending the command failed: {exc.message}") from exc
            await cleanup.destroy_activity(self._yagna, handle["activityId"])
            return WorkloadStatus(
                WorkloadState.FAILED,
                reason=FailureReason.PROVIDER_ERROR,
                message=f"The provider refused the command: {exc.message}",
                handle=handle,
            )
        handle.update(phase="deploying", batchId=str(batch))
        self._follower(handle)
        return phases.at(handle, notes=("Deploying the image on the provider.",))

    def _follower(self, handle: Handle) -> BatchFollower:
        follower = self._followers.get(handle["batchId"])
        if follower is None:
            follower = BatchFollower(
                self._yagna, handle["activityId"], handle["batchId"], min(self.poll, 5.0)
            )
            self._followers[handle["batchId"]] = follower
        follower.start()
        return follower

    async def _follow(self, handle: Handle) -> WorkloadStatus:
        self._desk.register(handle["agreementId"], handle["allocationId"])
        follower = self._follower(handle)
        if follower.done:
            return await self._ended(handle, follower)
        if follower.failures >= FAILURES_BEFORE_STATE_CHECK or self._state_due(handle):
            state = await self._activity_state(handle, missing_is_gone=True)
            if (state.get("state") or [None])[0] == "Terminated" and not follower.done:
                ended = self._terminated(handle, state, follower)
                if ended is not None:
                    return ended
        started = follower.run_started_at
        if started is not None and handle["phase"] != "running":
            handle.update(phase="running", startedAt=started.isoformat())
            return phases.at(handle, started_at=started, notes=("The command is running.",))
        return phases.at(handle, started_at=started)

    def _state_due(self, handle: Handle) -> bool:
        now = time.monotonic()
        last = self._state_checked.get(handle["activityId"], 0.0)
        if now - last < phases.STATE_CHECK_POLLS * self.poll:
            return False
        self._state_checked[handle["activityId"]] = now
        return True

    def _terminated(
        self, handle: Handle, state: dict[str, Any], follower: BatchFollower
    ) -> WorkloadStatus | None:
        """The activity ended before the command did. A provider that left the network is
        declared lost only after the result reads failed as often as yapapi allows (None:
        not yet); one that ended the activity itself (an unpaid debit note...) failed it."""
        said = [str(state[key]) for key in ("reason", "errorMessage") if state.get(key)]
        detail = "; ".join(said) or "no reason given"
        unreachable = "not found" in detail or "not found" in str(follower.last_error or "")
        if unreachable:
            if follower.failures < FAILURES_BEFORE_STATE_CHECK:
                return None
            raise HandleNotFound(
                f"golem: provider {handle.get('provider')} left the network mid-run ({detail})"
            )
        return WorkloadStatus(
            WorkloadState.FAILED,
            reason=FailureReason.PROVIDER_ERROR,
            message=f"Provider {handle.get('provider')} ended the activity: {detail}",
            handle=handle,
        )

    async def _ended(self, handle: Handle, follower: BatchFollower) -> WorkloadStatus:
        outcome = follower.outcome
        assert outcome is not None
        cost = await self._cost(handle)
        if cost is not None:
            handle["costGlm"] = cost
        notes = (
            (f"Used {cost:.6f} GLM at the agreed prices (the invoice follows).",)
            if cost is not None
            else ()
        )
        started = follower.run_started_at
        if outcome.index == DEPLOY:
            return WorkloadStatus(
                WorkloadState.FAILED,
                reason=FailureReason.IMAGE_PULL,
                message=f"The provider could not deploy the image: {outcome.message}. "
                + capability.GVMKIT_ADVICE,
                handle=handle,
                notes=notes,
            )
        if outcome.index != RUN or outcome.code is None:
            return WorkloadStatus(
                WorkloadState.FAILED,
                reason=FailureReason.PROVIDER_ERROR,
                message=f"The provider could not run the command: {outcome.message}",
                handle=handle,
                notes=notes,
                started_at=started,
            )
        code = outcome.code
        # The command ran: its output directory may hold something to upload.
        handle["ranCommand"] = True
        return WorkloadStatus(
            WorkloadState.EXITED,
            exit_code=code,
            reason=FailureReason.EXIT_CODE if code else None,
            message=f"exited with code {code}" if code else None,
            handle=handle,
            notes=notes,
            started_at=started,
        )

    async def _activity_state(
        self, handle: Handle, *, missing_is_gone: bool = True
    ) -> dict[str, Any]:
        try:
            state: dict[str, Any] = await self._yagna.call(
                "GET", f"{ACTIVITY}/activity/{handle['activityId']}/state"
            )
        except YagnaError as exc:
            if exc.status == 404 and missing_is_gone:
                raise HandleNotFound(
                    f"golem: activity {handle['activityId']} is unknown to the daemon"
                ) from exc
            if exc.provider_unreachable:
                raise HandleNotFound(
                    f"golem: provider {handle.get('provider')} left the network ({exc.message})"
                ) from exc
            raise Unavailable(f"golem: reading the activity state failed: {exc.message}") from exc
        return state

    async def _cost(self, handle: Handle) -> float | None:
        """GLM owed so far: the agreed coefficients times the activity's usage counters."""
        try:
            usage = await self._yagna.call(
                "GET", f"{ACTIVITY}/activity/{handle['activityId']}/usage"
            )
        except (YagnaError, Unavailable):
            return handle.get("costGlm")
        counters = (usage or {}).get("currentUsage")
        if not isinstance(counters, list) or "pricing" not in handle:
            return handle.get("costGlm")
        pricing = market.Pricing.from_json(handle["pricing"])
        return round(pricing.cost([float(c) for c in counters]), 9)

    # -- logs, metrics, watch ------------------------------------------------------------------

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        if "batchId" not in handle:
            return LogBatch((), cursor)
        follower = self._follower(handle)
        lines, after = follower.lines_after(cursor)
        return LogBatch(tuple(lines), after)

    async def metrics(self, handle: Handle) -> MetricSample | None:
        """CPU from the activity's usage counters: CPU seconds per wall second."""
        if "activityId" not in handle or "pricing" not in handle:
            return None
        try:
            usage = await self._yagna.call(
                "GET", f"{ACTIVITY}/activity/{handle['activityId']}/usage"
            )
        except YagnaError:
            return None
        vector = handle["pricing"]["vector"]
        counters = dict(zip(vector, (usage or {}).get("currentUsage") or [], strict=False))
        cpu = next((counters[n] for n in market.CPU_COUNTERS if n in counters), None)
        wall = next((counters[n] for n in market.DURATION_COUNTERS if n in counters), None)
        if cpu is None or wall is None:
            return None
        previous = self._usage_seen.get(handle["activityId"])
        self._usage_seen[handle["activityId"]] = (float(cpu), float(wall))
        if previous is None or wall <= previous[1]:
            millicores = float(cpu) / float(wall) * 1000 if wall else None
        else:
            millicores = (float(cpu) - previous[0]) / (float(wall) - previous[1]) * 1000
        return MetricSample(
            datetime.now(UTC),
            cpu_millicores=round(millicores, 3) if millicores is not None else None,
        )

    async def upload_output(self, handle: Handle, url: str) -> bool:
        """A second batch on the job's activity: `tar` of /cortex/output, then `transfer`
        of the archive to `url` (providers/golem/outputs.py says what yagna allows)."""
        return await outputs.upload(self._yagna, handle, url, self.poll)

    async def watch(self, handle: Handle, max_wait: float) -> None:
        if handle.get("phase") in phases.IMMEDIATE:
            return
        follower = self._followers.get(handle.get("batchId", ""))
        if follower is not None:
            await follower.changed(max_wait)
            return
        await asyncio.sleep(min(max_wait, self.poll))

    # -- stop and clean up ---------------------------------------------------------------------

    async def cancel(self, handle: Handle) -> None:
        follower = self._followers.get(handle.get("batchId", ""))
        if follower is not None:
            await follower.stop()
        if "activityId" in handle:
            await cleanup.destroy_activity(self._yagna, handle["activityId"])
        elif handle.get("agreementId"):
            await cleanup.end_agreement(self._yagna, handle["agreementId"])
        await cleanup.unsubscribe(self._yagna, handle["demandId"])

    async def release(self, handle: Handle) -> None:
        follower = self._followers.pop(handle.get("batchId", ""), None)
        if follower is not None:
            await follower.stop()
        if "activityId" in handle:
            await cleanup.destroy_activity(self._yagna, handle["activityId"])
            self._state_checked.pop(handle["activityId"], None)
            self._usage_seen.pop(handle["activityId"], None)
        if handle.get("agreementId"):
            approved = await cleanup.end_agreement(self._yagna, handle["agreementId"])
            if approved:
                self._desk.register(handle["agreementId"], handle["allocationId"])
                invoice = await self._desk.invoice(
                    handle["agreementId"],
                    handle.get("agreedAt"),
                    phases.INVOICE_WAIT_POLLS * self.poll,
                )
                if invoice is None:
                    logger.warning(
                        "golem: no invoice for agreement %s after %.0f s; releasing anyway",
                        handle["agreementId"],
                        phases.INVOICE_WAIT_POLLS * self.poll,
                    )
                self._desk.forget(handle["agreementId"])
        await cleanup.unsubscribe(self._yagna, handle["demandId"])
        await cleanup.release_allocation(self._yagna, handle["allocationId"])
