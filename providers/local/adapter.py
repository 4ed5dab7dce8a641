"""The local provider's lifecycle: containers on a Docker Engine API (Docker, or podman's
compatible service), spoken with httpx over a unix socket.

Everything it creates carries the label `cortex.job=<job id>`, so it can find its own
containers and volumes again after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any, ClassVar

import httpx

from providers import _http
from providers.base import Provider
from providers.errors import (
    HandleNotFound,
    ImagePullFailed,
    ProviderError,
    Rejected,
    Unavailable,
)
from providers.local import (
    containers,
    creation,
    docker_api,
    images,
    log_frames,
    outputs,
    sandbox,
    stats,
)
from providers.local.docker_api import API
from providers.local.followers import Doorbells
from providers.local.log_tail import LogTail
from providers.local.options import LocalOptions
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

# A batch of log lines is cut here so one noisy container cannot flood a transaction.
MAX_LOG_LINES_PER_READ = 20_000
STOP_GRACE_SECONDS = 5
# A healthy answer is reused for a while; a failure only briefly, so a runtime that comes back
# is used again at once.
HEALTH_CACHE_SECONDS, UNHEALTHY_CACHE_SECONDS = 5.0, 1.0
MAX_CONNECTIONS = 2_000
CONCURRENT_CREATES, CONCURRENT_REMOVALS = 4, 1
# A running container that the streams say is unchanged is still inspected, and its log
# read, at least this often: a safety net should a stream stall without breaking.
QUIET_RECHECK_SECONDS = 30.0
# A submission whose image is missing waits this long for its pull: a pull that fails at once
# (no such registry) fails the submission as before, and a small image needs no waiting
# state; a longer pull goes on in the background while the job shows its progress.
PULL_GRACE_SECONDS = 1.0


class LocalProvider(outputs.ArchiveOutputs, Provider):
    name = "local"
    options_model = LocalOptions
    capabilities: ClassVar[Capabilities] = Capabilities(
        pricing="A flat rate per CPU-hour set by the operator (free unless configured)."
    )

    def __init__(
        self,
        *,
        docker_host: str = "unix:///var/run/docker.sock",
        publish_host: str = "127.0.0.1",
        usd_per_cpu_hour: float = 0.0,
        network: str = "cortex-jobs",
        ports_network: str = "cortex-jobs-ports",
        allowed_registries: str = "",
        pids_limit: int = 512,
        log_max_bytes: int = 64 * 2**20,
        log_max_files: int = 2,
        writable_layer_limit: str = "auto",
    ) -> None:
        super().__init__()
        self.docker_host = docker_host
        self.publish_host = publish_host
        self.usd_per_cpu_hour = usd_per_cpu_hour
        self.sandbox = sandbox.Sandbox(
            network=network,
            ports_network=ports_network,
            pids_limit=pids_limit,
            log_max_bytes=log_max_bytes,
            log_max_files=log_max_files,
        )
        self.allowed_registries = sandbox.parse_registries(allowed_registries)
        self.writable_layer_limit = writable_layer_limit
        base, transport = docker_api.transport(docker_host, MAX_CONNECTIONS)
        self._client = _http.client(base, transport=transport)
        # Health checks get their own connections: a saturated job pool must not make the
        # runtime look down (and turn submissions away with 503).
        base, transport = docker_api.transport(docker_host, 4)
        self._health_client = _http.client(base, transport=transport)
        self._health: tuple[float, Health] | None = None
        self._cpu = stats.CpuSamples()
        self._running: set[str] = set()
        self._started_at: dict[str, datetime] = {}
        # The last status of each running container, the event stream's generation when it
        # was inspected, and when: what a quiet look answers without asking the runtime.
        self._quiet_status: dict[str, tuple[WorkloadStatus, int, float]] = {}
        # Containers seen ended, and each followed container's log.
        self._ended: set[str] = set()
        self._tails: dict[str, LogTail] = {}
        self._doorbells = Doorbells(self._client)
        # Creating and removing containers take the runtime's locks: past a few at once they
        # only queue up inside it and time out there, and every inspect waits behind them
        # (podman: 250 jobs submitted together, ~130 ms per removal, one at a time).
        # Removal is never urgent; noticing that a job ended is.
        self._creating = asyncio.Semaphore(CONCURRENT_CREATES)
        self._removing = asyncio.Semaphore(CONCURRENT_REMOVALS)
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._networks = sandbox.Networks(self._client)
        self._containers = creation.ContainerCreate(
            self._request, self.sandbox, publish_host, writable_layer_limit
        )
        self._pulls = images.Pulls(self._client, self.name)

    async def aclose(self) -> None:
        await self._pulls.aclose()
        starts = list(self._starting.values())
        for start in starts:
            start.cancel()
        await asyncio.gather(*starts, return_exceptions=True)
        await asyncio.gather(*(tail.aclose() for tail in self._tails.values()))
        self._tails.clear()
        await self._doorbells.aclose()
        await self._client.aclose()
        await self._health_client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with _http.map_http_errors(self.name):
            return await self._client.request(method, API + path, **kwargs)

    async def health(self) -> Health:
        now = time.monotonic()
        if self._health is not None:
            checked_at, health = self._health
            keep = HEALTH_CACHE_SECONDS if health.healthy else UNHEALTHY_CACHE_SECONDS
            if now - checked_at < keep:
                return health
        try:
            with _http.map_http_errors(self.name):
                response = await self._health_client.get("/_ping", timeout=3.0)
            if response.status_code == 200:
                health = Health(True, detail={"dockerHost": self.docker_host})
            else:
                health = Health(False, f"the container runtime answered {response.status_code}")
        except Unavailable as exc:
            where = f"the container runtime at {self.docker_host}"
            health = Health(False, f"{where} is unreachable ({exc}){docker_api.REMEDY}")
        self._health = (now, health)
        return health

    def check(self, spec: WorkloadSpec) -> list[Refusal]:
        refusals = super().check(spec)
        if not sandbox.image_allowed(spec.image, self.allowed_registries):
            refusals.append(
                Refusal(
                    "image",
                    f"{sandbox.PULL_FAILED}: registry {sandbox.registry_of(spec.image)} is not "
                    f"allowed on {self.name}",
                )
            )
        if self.sandbox.ports_network == "off" and any(port.expose for port in spec.ports):
            refusals.append(Refusal("ports", f"{self.name} does not expose ports here"))
        return refusals

    async def quote(self, spec: WorkloadSpec) -> Quote:
        hourly = self.usd_per_cpu_hour * spec.cpu_millicores / 1000
        return Quote(usd_per_hour=hourly, native_amount=hourly, native_unit="USD/hour")

    # -- lifecycle ---------------------------------------------------------------------------

    async def submit(self, spec: WorkloadSpec) -> Handle:
        """Create the container and place the job spec in it, then start it in the
        background: the engine records the job `scheduled` while the runtime starts it (the
        slowest step), and the first status call waits for the start's outcome.

        Without its image, the job's handle is a pulling one (providers/local/images.py) while
        the image is pulled, and a status look creates the container once it is here."""
        return await self._place(spec)

    async def _place(self, spec: WorkloadSpec, *, pulled: bool = False) -> Handle:
        await self._creating.acquire()
        try:
            handle = await self._create(spec, pulled=pulled)
        except BaseException:
            self._creating.release()
            raise
        if images.is_pulling(handle):
            # A pull may take minutes: it holds no create slot meanwhile.
            self._creating.release()
            pull = self._pulls.start(spec.image)
            if await self._pulls.finished(pull, PULL_GRACE_SECONDS, spec.job_id):
                return await self._place(spec, pulled=True)
            return handle
        container_id = handle["containerId"]
        self._doorbells.expect(container_id)
        start = asyncio.create_task(self._start(handle))
        start.add_done_callback(lambda _: self._creating.release())
        self._starting[container_id] = start
        return handle

    async def _start(self, handle: Handle) -> None:
        started = await self._request("POST", f"/containers/{handle['containerId']}/start")
        if started.status_code not in (204, 304):
            docker_api.raise_for_server_error(started)
            raise Rejected(f"the container would not start: {docker_api.message(started)}")

    async def _start_outcome(self, container_id: str) -> WorkloadStatus | None:
        """Wait for a start this process began. One the runtime refused is the workload's
        failure; one that could not be sent raises Unavailable, and a later look (seeing the
        container still created) starts it again."""
        start = self._starting.pop(container_id, None)
        if start is None:
            return None
        try:
            await start
        except Rejected as exc:
            return WorkloadStatus(
                WorkloadState.FAILED, reason=FailureReason.PROVIDER_ERROR, message=str(exc)
            )
        return None

    async def _settle_start(self, container_id: str) -> None:
        with contextlib.suppress(ProviderError):
            await self._start_outcome(container_id)

    async def _create(self, spec: WorkloadSpec, *, pulled: bool) -> Handle:
        """The job's container (created, holding its spec file), or a pulling handle when the
        runtime lacks its image (and `pulled` is False)."""
        if not sandbox.image_allowed(spec.image, self.allowed_registries):
            # Admission refuses these; a job admitted before the list changed ends here.
            logger.warning(
                "job %s: image %s refused, its registry is not in allowed_registries",
                spec.job_id,
                spec.image,
            )
            raise ImagePullFailed(sandbox.pull_failed(spec.image))
        exposes = any(port.expose for port in spec.ports)
        network = self.sandbox.network_for(exposes)
        # Published ports need a routed bridge; everything else gets the internal network.
        await self._networks.ensure(network, internal=not exposes)
        volumes = [
            await creation.create_volume(self._request, spec, volume.name)
            for volume in spec.volumes
        ]
        name = f"cortex-{spec.job_id}"
        response = await self._containers.create(spec, name, volumes)
        if response.status_code == 404 and not pulled:
            # No such image: pull it, then create again (as `docker run` does). Asking first
            # would cost every job a request for what is nearly always there.
            return images.pulling_handle(spec, name, volumes)
        if response.status_code == 409 or docker_api.name_in_use(response):
            # Created by an earlier attempt that died before the handle was stored.
            container_id = await creation.own_container(self._request, name, spec.job_id)
        elif response.status_code in (200, 201):
            container_id = response.json()["Id"]
        elif response.status_code == 404:
            logger.warning(
                "job %s: image %s missing after its pull: %s",
                spec.job_id,
                spec.image,
                docker_api.message(response),
            )
            raise ImagePullFailed(sandbox.pull_failed(spec.image))
        else:
            docker_api.raise_for_server_error(response)
            raise Rejected(f"the container runtime refused the job: {docker_api.message(response)}")
        handle: Handle = {"containerId": container_id, "containerName": name, "volumes": volumes}
        await creation.put_spec_file(self._request, container_id, spec)
        return handle

    async def _inspect(self, handle: Handle) -> dict[str, Any]:
        response = await self._request("GET", f"/containers/{handle['containerId']}/json")
        if response.status_code == 404:
            raise HandleNotFound(f"container {handle['containerName']} no longer exists")
        docker_api.raise_for_server_error(response)
        info: dict[str, Any] = response.json()
        return info

    async def status(self, handle: Handle) -> WorkloadStatus:
        """The container's state. A running container the streams have nothing new about
        (no event, no output, no broken stream) is as it was: answered without a request,
        so hundreds of quiet jobs cost the runtime nothing between their events."""
        if images.is_pulling(handle):
            return await self._pulling_status(handle)
        container_id = handle["containerId"]
        refused = await self._start_outcome(container_id)
        if refused is not None:
            return refused
        code = self._doorbells.exit_code(container_id)
        if code is not None and container_id in self._started_at:
            # Seen running, then its `die` event (which carries the exit code): what an
            # inspect would say, without asking a runtime that a burst of exits keeps busy.
            self._running.discard(container_id)
            self._ended.add(container_id)
            self._quiet_status.pop(container_id, None)
            return containers.exited(code, self._started_at[container_id])
        known = self._quiet_status.get(container_id)
        if (
            known is not None
            and time.monotonic() - known[2] < QUIET_RECHECK_SECONDS
            and self._doorbells.unchanged(container_id, known[1])
        ):
            return known[0]
        generation = self._doorbells.looking(container_id)
        status = await self._inspected_status(handle)
        if status.state is WorkloadState.RUNNING and generation is not None:
            self._quiet_status[container_id] = (status, generation, time.monotonic())
        else:
            self._quiet_status.pop(container_id, None)
        return status

    async def _pulling_status(self, handle: Handle) -> WorkloadStatus:
        """While the image is pulled: PENDING, saying how far the pull is. Then the container
        is created (and started), and its handle replaces the pulling one."""
        spec = images.spec_of(handle)
        pull = self._pulls.get(spec.image)
        try:
            if pull is not None and not await self._pulls.finished(pull, 0, spec.job_id):
                return WorkloadStatus(containers.STATES["pulling"], waiting=pull.message)
            # Pulled; or no pull in this process (a restart mid-pull): the image may be here,
            # else its pull starts again.
            placed = await self._place(spec, pulled=pull is not None)
        except ImagePullFailed as exc:
            return WorkloadStatus(
                WorkloadState.FAILED, reason=FailureReason.IMAGE_PULL, message=str(exc)
            )
        except Rejected as exc:
            return WorkloadStatus(
                WorkloadState.FAILED, reason=FailureReason.REJECTED, message=str(exc)
            )
        if images.is_pulling(placed):
            pull = self._pulls.get(spec.image)
            waiting = pull.message if pull is not None else containers.WAITING["pulling"]
            return WorkloadStatus(containers.STATES["pulling"], handle=placed, waiting=waiting)
        return WorkloadStatus(
            containers.STATES["created"], handle=placed, waiting=containers.WAITING["created"]
        )

    async def _inspected_status(self, handle: Handle) -> WorkloadStatus:
        info = await self._inspect(handle)
        state = info.get("State") or {}
        raw = str(state.get("Status", "")).lower()
        mapped = containers.STATES.get(raw)
        if mapped is None:
            logger.warning("unmapped container state %r for %s", raw, handle["containerName"])
            mapped = WorkloadState.UNKNOWN
        container_id = handle["containerId"]
        started_at = docker_api.parse_time(state.get("StartedAt"))
        if mapped is WorkloadState.RUNNING:
            self._running.add(container_id)
            self._doorbells.running(container_id)
            if started_at is not None:
                self._started_at[container_id] = started_at
        else:
            self._running.discard(container_id)
            if mapped in (WorkloadState.EXITED, WorkloadState.FAILED):
                self._ended.add(container_id)
            if mapped is WorkloadState.STARTING:
                self._doorbells.expect(container_id)
                if raw in ("created", "configured"):
                    # Never started: this process died before its start went out, or the
                    # start could not be sent. Start it now (204, or 304 if it already is).
                    try:
                        await self._start(handle)
                    except Rejected as exc:
                        return WorkloadStatus(
                            WorkloadState.FAILED,
                            reason=FailureReason.PROVIDER_ERROR,
                            message=str(exc),
                        )
        if mapped is WorkloadState.EXITED:
            code = int(state.get("ExitCode", 0))
            return containers.exited(code, started_at, oom_killed=bool(state.get("OOMKilled")))
        if mapped is WorkloadState.FAILED:
            return WorkloadStatus(
                mapped,
                reason=FailureReason.PROVIDER_ERROR,
                message=state.get("Error") or "the container is dead",
            )
        return WorkloadStatus(
            mapped,
            endpoints=containers.endpoints(info, self.publish_host)
            if mapped is WorkloadState.RUNNING
            else (),
            started_at=started_at,
            waiting=containers.WAITING.get(raw),
        )

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        """Read the container's log after `cursor`, from its tail (providers/local/log_tail.py).

        The cursor is "<last timestamp>|<frames taken with that timestamp>": runtimes print
        timestamps coarser than they filter by (podman prints whole seconds), so a tail starts
        at that second and skips the frames already taken.
        """
        if images.is_pulling(handle):
            return LogBatch((), cursor, complete=True)  # no container: nothing printed yet
        container_id = handle["containerId"]
        if container_id not in self._running and container_id not in self._ended:
            # Not seen yet by this process (a restart, or a direct call): a created container
            # has printed nothing, and a log followed before it runs would end at once.
            await self.status(handle)
            if container_id not in self._running and container_id not in self._ended:
                return LogBatch((), cursor)
        ended = container_id in self._ended
        tail = self._tails.get(container_id)
        finished = tail is not None and tail.ended and tail.empty and not tail.follow
        if tail is not None and finished and tail.cursor == cursor:
            return LogBatch((), cursor, complete=True)
        if (
            tail is None
            or tail.cursor != cursor
            or (tail.ended and tail.empty)
            or (ended and tail.follow)
        ):
            # A stopped container's log is read once more, unfollowed, from the cursor: the
            # followed stream may have ended before it delivered everything.
            tail = await self._new_tail(handle, cursor, follow=not ended)
        if ended:
            # A final read: take as much as a read may hold, or the rest of the log.
            await tail.filled()
        if tail.error is not None and tail.empty:
            error = tail.error
            await self._tails.pop(container_id).aclose()
            raise error
        last_stamp, taken, skipping = log_frames.parse_cursor(cursor)
        frames = tail.peek()
        # The whole log is in hand once a stopped container's was read to its end.
        at_end = tail.ended and not tail.follow
        joined = log_frames.whole_lines(frames, at_end, MAX_LOG_LINES_PER_READ, skipping)
        if tail.full and joined.used == 0 and frames:
            # One unfinished line fills the whole buffer: take it cut, or nothing ever moves.
            joined = log_frames.whole_lines(
                frames, False, MAX_LOG_LINES_PER_READ, skipping, flush=True
            )
        for frame in frames[: joined.used]:
            if frame.stamp == last_stamp:
                taken += 1
            else:
                last_stamp, taken = frame.stamp, 1
        next_cursor = log_frames.format_cursor(last_stamp, taken, joined.skipping)
        tail.consume(joined.used, next_cursor)
        return LogBatch(joined.lines, next_cursor, complete=at_end and joined.used == len(frames))

    async def _new_tail(self, handle: Handle, cursor: str | None, *, follow: bool) -> LogTail:
        container_id = handle["containerId"]
        old = self._tails.pop(container_id, None)
        if old is not None:
            await old.aclose()
        last_stamp, taken, _ = log_frames.parse_cursor(cursor)
        tail = LogTail(
            self.docker_host,
            container_id,
            handle["containerName"],
            cursor,
            last_stamp,
            taken,
            on_data=lambda: self._doorbells.ring(container_id),
            follow=follow,
        )
        self._tails[container_id] = tail
        return tail

    async def metrics(self, handle: Handle) -> MetricSample | None:
        if images.is_pulling(handle):
            return None
        container_id = handle["containerId"]
        response = await self._request(
            "GET", f"/containers/{container_id}/stats", params={"stream": "false"}
        )
        try:
            answer = response.json() if response.status_code == 200 else None
        except ValueError:
            answer = None  # podman answers an empty body for a stopped container
        if not answer:
            return None
        return self._cpu.sample(container_id, answer, self._started_at.get(container_id))

    async def cancel(self, handle: Handle) -> None:
        if images.is_pulling(handle):
            return  # nothing runs yet; the pull may serve other jobs (release removes the rest)
        # A start still on its way would undo the stop.
        await self._settle_start(handle["containerId"])
        response = await self._request(
            "POST",
            f"/containers/{handle['containerId']}/stop",
            params={"t": STOP_GRACE_SECONDS},
            timeout=STOP_GRACE_SECONDS + 30,
        )
        if response.status_code not in (204, 304, 404):
            docker_api.raise_for_server_error(response)
        self._running.discard(handle["containerId"])
        self._quiet_status.pop(handle["containerId"], None)

    async def release(self, handle: Handle) -> None:
        if not images.is_pulling(handle):
            await self._settle_start(handle["containerId"])
        async with self._removing:
            await self._release(handle)

    async def _release(self, handle: Handle) -> None:
        # A pulling handle's container, by its name: a look may have created it just before
        # the job ended, without its handle being stored.
        container = handle.get("containerId") or handle["containerName"]
        response = await self._request(
            "DELETE", f"/containers/{container}", params={"force": "true", "v": "true"}
        )
        if response.status_code not in (200, 204, 404):
            docker_api.raise_for_server_error(response)
        for volume in handle.get("volumes", []):
            removed = await self._request("DELETE", f"/volumes/{volume}", params={"force": "true"})
            if removed.status_code not in (204, 404):
                docker_api.raise_for_server_error(removed)
        if not images.is_pulling(handle):
            self._forget(handle["containerId"])

    def _forget(self, container_id: str) -> None:
        self._cpu.forget(container_id)
        self._started_at.pop(container_id, None)
        self._running.discard(container_id)
        self._quiet_status.pop(container_id, None)
        self._ended.discard(container_id)
        tail = self._tails.pop(container_id, None)
        if tail is not None:
            tail.close()
        self._doorbells.forget(container_id)

    async def watch(self, handle: Handle, max_wait: float) -> None:
        if images.is_pulling(handle):
            await self._pulls.wait(handle[images.PULLING], max_wait)
            return
        container_id = handle["containerId"]
        await self._doorbells.wait(container_id, max_wait, running=container_id in self._running)
