"""The local provider's lifecycle: containers on a Docker Engine API (Docker, or podman's
compatible service), spoken with httpx over a unix socket.

Everything it creates carries the label `cortex.job=<job id>`, so it can find its own
containers and volumes again after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
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
from providers.local import containers, docker_api, log_frames, outputs, sandbox
from providers.local.containers import JOB_LABEL, MANAGED_LABEL
from providers.local.docker_api import API
from providers.local.followers import Doorbells
from providers.local.log_tail import LogTail
from providers.local.options import LocalOptions
from providers.local.spec_archive import spec_archive
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
        # Learnt from the runtime's first refusal, when the option leaves it to the driver.
        self._layer_limit_works = writable_layer_limit != "off"
        base, transport = docker_api.transport(docker_host, MAX_CONNECTIONS)
        self._client = _http.client(base, transport=transport)
        # Health checks get their own connections: a saturated job pool must not make the
        # runtime look down (and turn submissions away with 503).
        base, transport = docker_api.transport(docker_host, 4)
        self._health_client = _http.client(base, transport=transport)
        self._health: tuple[float, Health] | None = None
        self._cpu_seen: dict[str, tuple[int, float]] = {}
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

    async def aclose(self) -> None:
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
        slowest step), and the first status call waits for the start's outcome."""
        await self._creating.acquire()
        try:
            handle = await self._create(spec)
        except BaseException:
            self._creating.release()
            raise
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

    async def _create(self, spec: WorkloadSpec) -> Handle:
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
        volumes = [await self._create_volume(spec, volume.name) for volume in spec.volumes]
        name = f"cortex-{spec.job_id}"
        response = await self._create_container(spec, name, volumes)
        if response.status_code == 404:
            # No such image: pull it and create again (as `docker run` does). Asking first
            # would cost every job a request for what is nearly always there.
            await self._pull(spec)
            response = await self._create_container(spec, name, volumes)
        if response.status_code == 409 or docker_api.name_in_use(response):
            # Created by an earlier attempt that died before the handle was stored.
            container_id = await self._own_container(name, spec.job_id)
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
        await self._put_spec_file(container_id, spec)
        return handle

    async def _create_container(
        self, spec: WorkloadSpec, name: str, volumes: list[str]
    ) -> httpx.Response:
        limit = self._layer_limit_works and spec.storage_bytes > 0
        config = containers.container_config(
            spec, volumes, self.publish_host, self.sandbox, limit_writable_layer=limit
        )
        path = f"/containers/create?name={name}"
        response = await self._request("POST", path, json=config)
        if limit and sandbox.storage_opt_unsupported(response):
            if self.writable_layer_limit == "required":
                raise Rejected(
                    "the container runtime cannot limit the writable layer's size "
                    f"(writable_layer_limit is required): {docker_api.message(response)}"
                )
            logger.warning(
                "the storage driver cannot limit a container's writable layer; local jobs "
                "run without that limit: %s",
                docker_api.message(response),
            )
            self._layer_limit_works = False
            config = containers.container_config(
                spec, volumes, self.publish_host, self.sandbox, limit_writable_layer=False
            )
            response = await self._request("POST", path, json=config)
        return response

    async def _pull(self, spec: WorkloadSpec) -> None:
        try:
            await self._pull_image(spec.image)
        except ImagePullFailed as exc:
            logger.warning("job %s: %s", spec.job_id, exc)
            raise ImagePullFailed(sandbox.pull_failed(spec.image)) from None

    async def _pull_image(self, image: str) -> None:
        name, tag = docker_api.split_image(image)
        params = {"fromImage": name}
        if tag:
            params["tag"] = tag
        try:
            with _http.map_http_errors(self.name):
                async with self._client.stream(
                    "POST", API + "/images/create", params=params, timeout=httpx.Timeout(600.0)
                ) as response:
                    body = await response.aread()
        except Unavailable as exc:
            raise ImagePullFailed(f"pulling {image} failed: {exc}") from exc
        error = None
        for line in body.decode(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            error = event.get("error") or error
        if response.status_code != 200 or error:
            raise ImagePullFailed(
                f"pulling {image} failed: {error or body.decode(errors='replace')}"
            )

    async def _create_volume(self, spec: WorkloadSpec, name: str) -> str:
        volume_name = f"cortex-{spec.job_id}-{name}"
        response = await self._request(
            "POST",
            "/volumes/create",
            json={"Name": volume_name, "Labels": {JOB_LABEL: spec.job_id, MANAGED_LABEL: "true"}},
        )
        if response.status_code not in (200, 201, 409):
            docker_api.raise_for_server_error(response)
            raise Rejected(f"cannot create volume {name}: {docker_api.message(response)}")
        return volume_name

    async def _own_container(self, name: str, job_id: str) -> str:
        response = await self._request("GET", f"/containers/{name}/json")
        if response.status_code != 200:
            raise Unavailable(f"container {name} exists but cannot be inspected")
        info = response.json()
        if (info.get("Config", {}).get("Labels") or {}).get(JOB_LABEL) != job_id:
            raise Rejected(f"a container named {name} exists and is not this job's")
        return str(info["Id"])

    async def _put_spec_file(self, container_id: str, spec: WorkloadSpec) -> None:
        response = await self._request(
            "PUT",
            f"/containers/{container_id}/archive",
            params={"path": "/"},
            content=spec_archive(spec.document),
            headers={"Content-Type": "application/x-tar"},
        )
        if response.status_code != 200:
            docker_api.raise_for_server_error(response)
            raise Rejected(
                f"cannot place the job spec in the container: {docker_api.message(response)}"
            )

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
        container_id = handle["containerId"]
        response = await self._request(
            "GET", f"/containers/{container_id}/stats", params={"stream": "false"}
        )
        try:
            stats = response.json() if response.status_code == 200 else None
        except ValueError:
            stats = None  # podman answers an empty body for a stopped container
        if not stats:
            return None
        now = datetime.now(UTC)
        total = int(((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0)
        cpu = None
        previous = self._cpu_seen.get(container_id)
        wall = time.monotonic()
        if previous is not None and wall > previous[1] and total >= previous[0]:
            cpu = (total - previous[0]) / ((wall - previous[1]) * 1e9) * 1000
        elif container_id in self._started_at:
            # No earlier sample (the runtime's one-shot stats carry none): average since start.
            elapsed = (now - self._started_at[container_id]).total_seconds()
            cpu = total / (elapsed * 1e9) * 1000 if elapsed > 0 else None
        self._cpu_seen[container_id] = (total, wall)
        memory = (stats.get("memory_stats") or {}).get("usage")
        networks = stats.get("networks") or {}
        rx = sum(int(n.get("rx_bytes", 0)) for n in networks.values()) if networks else None
        tx = sum(int(n.get("tx_bytes", 0)) for n in networks.values()) if networks else None
        return MetricSample(
            now,
            cpu_millicores=round(cpu, 3) if cpu is not None else None,
            memory_bytes=int(memory) if memory is not None else None,
            network_rx_bytes=rx,
            network_tx_bytes=tx,
        )

    async def cancel(self, handle: Handle) -> None:
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
        await self._settle_start(handle["containerId"])
        async with self._removing:
            await self._release(handle)

    async def _release(self, handle: Handle) -> None:
        response = await self._request(
            "DELETE", f"/containers/{handle['containerId']}", params={"force": "true", "v": "true"}
        )
        if response.status_code not in (200, 204, 404):
            docker_api.raise_for_server_error(response)
        for volume in handle.get("volumes", []):
            removed = await self._request("DELETE", f"/volumes/{volume}", params={"force": "true"})
            if removed.status_code not in (204, 404):
                docker_api.raise_for_server_error(removed)
        self._forget(handle["containerId"])

    def _forget(self, container_id: str) -> None:
        self._cpu_seen.pop(container_id, None)
        self._started_at.pop(container_id, None)
        self._running.discard(container_id)
        self._quiet_status.pop(container_id, None)
        self._ended.discard(container_id)
        tail = self._tails.pop(container_id, None)
        if tail is not None:
            tail.close()
        self._doorbells.forget(container_id)

    async def watch(self, handle: Handle, max_wait: float) -> None:
        container_id = handle["containerId"]
        await self._doorbells.wait(container_id, max_wait, running=container_id in self._running)
