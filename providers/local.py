"""The local provider: containers on a Docker Engine API (Docker, or podman's compatible
service), spoken with httpx over a unix socket.

Everything it creates carries the label `cortex.job=<job id>`, so it can find its own
containers and volumes again after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import struct
import tarfile
import time
from dataclasses import dataclass
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
from providers.types import (
    Capabilities,
    Endpoint,
    FailureReason,
    Handle,
    Health,
    LogBatch,
    LogLine,
    MetricSample,
    Quote,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)

logger = logging.getLogger(__name__)

API = "/v1.41"
JOB_LABEL = "cortex.job"
MANAGED_LABEL = "cortex.managed"
SPEC_PATH = "/cortex/spec/job.json"
# A batch of log lines is cut here so one noisy container cannot flood a transaction.
MAX_LOG_LINES_PER_READ = 5_000
STOP_GRACE_SECONDS = 5
# A healthy answer is reused for a while; a failure only briefly, so a runtime that comes back
# is used again at once.
HEALTH_CACHE_SECONDS, UNHEALTHY_CACHE_SECONDS = 5.0, 1.0
MAX_CONNECTIONS = 2_000
CONCURRENT_CREATES, CONCURRENT_REMOVALS = 4, 1
# How long a death seen on the event stream is remembered for a watch that starts late.
RECENT_DEATH_SECONDS = 60.0
MIN_WAKE_SECONDS = 0.05
# A running container that the streams say is unchanged is still inspected, and its log
# read, at least this often: a safety net should a stream stall without breaking.
QUIET_RECHECK_SECONDS = 30.0
# Streams that stay open as long as there is something to follow.
_STREAMING = httpx.Timeout(None, connect=5.0, pool=5.0)

_STATES = {
    "created": WorkloadState.STARTING,
    "configured": WorkloadState.STARTING,
    "initialized": WorkloadState.STARTING,
    "running": WorkloadState.RUNNING,
    "paused": WorkloadState.RUNNING,
    "restarting": WorkloadState.RUNNING,
    "stopping": WorkloadState.RUNNING,
    "exited": WorkloadState.EXITED,
    "stopped": WorkloadState.EXITED,
    "removing": WorkloadState.EXITED,
    "dead": WorkloadState.FAILED,
}
_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}
# SIGKILL's exit code. Under cgroup v1, podman reports an OOM kill as 137 with OOMKilled false.
_KILLED = 137


def _parse_time(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-01-01"):
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())[:6]
    moment = datetime.fromisoformat(head + (f".{fraction}" if fraction else ""))
    return moment.replace(tzinfo=UTC)


def _transport(docker_host: str, max_connections: int) -> tuple[str, httpx.AsyncHTTPTransport]:
    """The base URL and transport for DOCKER_HOST (`unix:///path` or `tcp://host:port`). The
    pool limits belong to the transport: httpx ignores a client's limits when given one."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=min(max_connections, 64)
    )
    if docker_host.startswith("tcp://"):
        base = "http://" + docker_host.removeprefix("tcp://")
        return base, httpx.AsyncHTTPTransport(limits=limits)
    socket = docker_host.removeprefix("unix://")
    return "http://docker", httpx.AsyncHTTPTransport(uds=socket, limits=limits)


def _split_image(image: str) -> tuple[str, str]:
    """`repo:tag` -> (repo, tag); a digest or no tag pulls as given."""
    if "@" in image:
        return image, ""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, "latest"
    return name, tag


class LocalProvider(Provider):
    name = "local"
    capabilities: ClassVar[Capabilities] = Capabilities(
        pricing="A flat rate per CPU-hour set by the operator (free unless configured)."
    )

    def __init__(
        self,
        *,
        docker_host: str = "unix:///var/run/docker.sock",
        publish_host: str = "127.0.0.1",
        usd_per_cpu_hour: float = 0.0,
    ) -> None:
        super().__init__()
        self.docker_host = docker_host
        self.publish_host = publish_host
        self.usd_per_cpu_hour = usd_per_cpu_hour
        base, transport = _transport(docker_host, MAX_CONNECTIONS)
        self._client = _http.client(base, transport=transport)
        # Health checks get their own connections: a saturated job pool must not make the
        # runtime look down (and turn submissions away with 503).
        base, transport = _transport(docker_host, 4)
        self._health_client = _http.client(base, transport=transport)
        self._health: tuple[float, Health] | None = None
        self._cpu_seen: dict[str, tuple[int, float]] = {}
        self._running: set[str] = set()
        self._started_at: dict[str, datetime] = {}
        # The last status of each running container, the event stream's generation when it
        # was inspected, and when: what a quiet look answers without asking the runtime.
        self._quiet_status: dict[str, tuple[WorkloadStatus, int, float]] = {}
        self._last_log_read: dict[str, float] = {}
        self._doorbells = _Doorbells(self._client)
        # Creating and removing containers take the runtime's locks: past a few at once they
        # only queue up inside it and time out there, and every inspect waits behind them
        # (podman: 250 jobs submitted together, ~130 ms per removal, one at a time).
        # Removal is never urgent; noticing that a job ended is.
        self._creating = asyncio.Semaphore(CONCURRENT_CREATES)
        self._removing = asyncio.Semaphore(CONCURRENT_REMOVALS)
        self._starting: dict[str, asyncio.Task[None]] = {}

    async def aclose(self) -> None:
        starts = list(self._starting.values())
        for start in starts:
            start.cancel()
        await asyncio.gather(*starts, return_exceptions=True)
        await self._doorbells.aclose()
        await self._client.aclose()
        await self._health_client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with _http.map_http_errors(self.name):
            return await self._client.request(method, API + path, **kwargs)

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            return str(response.json().get("message") or response.text)
        except ValueError:
            return response.text

    def _raise_for_server_error(self, response: httpx.Response) -> None:
        if response.status_code >= 500:
            raise Unavailable(f"container runtime error: {self._message(response)}")

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
            health = Health(
                False, f"the container runtime at {self.docker_host} is unreachable: {exc}"
            )
        self._health = (now, health)
        return health

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
            self._raise_for_server_error(started)
            raise Rejected(f"the container would not start: {self._message(started)}")

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
        volumes = [await self._create_volume(spec, volume.name) for volume in spec.volumes]
        name = f"cortex-{spec.job_id}"
        config = self._container_config(spec, volumes)
        response = await self._request("POST", f"/containers/create?name={name}", json=config)
        if response.status_code == 404:
            # No such image: pull it and create again (as `docker run` does). Asking first
            # would cost every job a request for what is nearly always there.
            await self._pull(spec.image)
            response = await self._request("POST", f"/containers/create?name={name}", json=config)
        if response.status_code == 409 or _name_in_use(response):
            # Created by an earlier attempt that died before the handle was stored.
            container_id = await self._own_container(name, spec.job_id)
        elif response.status_code in (200, 201):
            container_id = response.json()["Id"]
        elif response.status_code == 404:
            raise ImagePullFailed(self._message(response))
        else:
            self._raise_for_server_error(response)
            raise Rejected(f"the container runtime refused the job: {self._message(response)}")
        handle: Handle = {"containerId": container_id, "containerName": name, "volumes": volumes}
        await self._put_spec_file(container_id, spec)
        return handle

    def _container_config(self, spec: WorkloadSpec, volumes: list[str]) -> dict[str, Any]:
        exposed = [port for port in spec.ports if port.expose]
        config: dict[str, Any] = {
            "Image": spec.image,
            "Env": [f"{key}={value}" for key, value in spec.env.items()],
            "Labels": {JOB_LABEL: spec.job_id, MANAGED_LABEL: "true"},
            "ExposedPorts": {f"{p.port}/{p.protocol}": {} for p in spec.ports},
            "HostConfig": {
                "NanoCpus": spec.cpu_millicores * 1_000_000,
                "Memory": spec.memory_bytes,
                "MemorySwap": spec.memory_bytes,
                "PortBindings": {
                    f"{p.port}/{p.protocol}": [{"HostIp": self.publish_host, "HostPort": ""}]
                    for p in exposed
                },
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": volume_name,
                        "Target": volume.mount_path,
                        "ReadOnly": volume.read_only,
                    }
                    for volume, volume_name in zip(spec.volumes, volumes, strict=True)
                ],
            },
        }
        if spec.command is not None:
            config["Entrypoint"] = list(spec.command)
            config["Cmd"] = list(spec.args or [])
        elif spec.args is not None:
            config["Cmd"] = list(spec.args)
        return config

    async def _pull(self, image: str) -> None:
        name, tag = _split_image(image)
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
            self._raise_for_server_error(response)
            raise Rejected(f"cannot create volume {name}: {self._message(response)}")
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
            self._raise_for_server_error(response)
            raise Rejected(f"cannot place the job spec in the container: {self._message(response)}")

    async def _inspect(self, handle: Handle) -> dict[str, Any]:
        response = await self._request("GET", f"/containers/{handle['containerId']}/json")
        if response.status_code == 404:
            raise HandleNotFound(f"container {handle['containerName']} no longer exists")
        self._raise_for_server_error(response)
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
            self._quiet_status.pop(container_id, None)
            return _exited(code, self._started_at[container_id])
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
        mapped = _STATES.get(raw)
        if mapped is None:
            logger.warning("unmapped container state %r for %s", raw, handle["containerName"])
            mapped = WorkloadState.UNKNOWN
        container_id = handle["containerId"]
        started_at = _parse_time(state.get("StartedAt"))
        if mapped is WorkloadState.RUNNING:
            self._running.add(container_id)
            self._doorbells.running(container_id)
            if started_at is not None:
                self._started_at[container_id] = started_at
        else:
            self._running.discard(container_id)
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
            return _exited(code, started_at, oom_killed=bool(state.get("OOMKilled")))
        if mapped is WorkloadState.FAILED:
            return WorkloadStatus(
                mapped,
                reason=FailureReason.PROVIDER_ERROR,
                message=state.get("Error") or "the container is dead",
            )
        return WorkloadStatus(
            mapped,
            endpoints=self._endpoints(info) if mapped is WorkloadState.RUNNING else (),
            started_at=started_at,
        )

    def _endpoints(self, info: dict[str, Any]) -> tuple[Endpoint, ...]:
        ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
        endpoints = []
        for key, bindings in sorted(ports.items()):
            port, _, protocol = key.partition("/")
            for binding in bindings or []:
                if binding.get("HostPort") and protocol == "tcp":
                    host = binding.get("HostIp") or self.publish_host
                    if host in ("0.0.0.0", ""):
                        host = "127.0.0.1"
                    endpoints.append(Endpoint(int(port), f"http://{host}:{binding['HostPort']}"))
                    break
        return tuple(endpoints)

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        """Read the container's log after `cursor`.

        The cursor is "<last timestamp>|<frames taken with that timestamp>": runtimes print
        timestamps coarser than they filter by (podman prints whole seconds), so a read starts
        again at that second and skips the frames already taken.
        """
        container_id = handle["containerId"]
        last_read = self._last_log_read.get(container_id)
        if (
            last_read is not None
            and container_id in self._running
            and time.monotonic() - last_read < QUIET_RECHECK_SECONDS
            and self._doorbells.silent(container_id)
        ):
            return LogBatch((), cursor)
        self._doorbells.reading(container_id)
        self._last_log_read[container_id] = time.monotonic()
        last_stamp, taken = None, 0
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1}
        if cursor:
            last_stamp, _, taken_text = cursor.rpartition("|")
            taken = int(taken_text)
            since = _parse_time(last_stamp)
            if since is not None:
                params["since"] = int(since.timestamp())
        response = await self._request(
            "GET", f"/containers/{handle['containerId']}/logs", params=params
        )
        if response.status_code == 404:
            raise HandleNotFound(f"container {handle['containerName']} no longer exists")
        self._raise_for_server_error(response)
        floor = _parse_time(last_stamp)
        frames: list[_Frame] = []
        to_skip = taken
        for stream, text in _frames(response.content):
            stamp, _, part = text.partition(" ")
            moment = _parse_time(stamp)
            if moment is None or (floor is not None and moment < floor):
                continue
            if stamp == last_stamp and to_skip > 0:
                to_skip -= 1
                continue
            frames.append(_Frame(stream, stamp, moment, part))
        # A line still being written stays for the next read, unless the container is done.
        partial_lines_are_final = handle["containerId"] not in self._running
        lines, used = _whole_lines(frames, partial_lines_are_final, MAX_LOG_LINES_PER_READ)
        for frame in frames[:used]:
            if frame.stamp == last_stamp:
                taken += 1
            else:
                last_stamp, taken = frame.stamp, 1
        return LogBatch(
            lines,
            f"{last_stamp}|{taken}" if last_stamp else None,
            # An ended container's log was read to its end unless the read was capped.
            complete=partial_lines_are_final and used == len(frames),
        )

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
            self._raise_for_server_error(response)
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
            self._raise_for_server_error(response)
        for volume in handle.get("volumes", []):
            removed = await self._request("DELETE", f"/volumes/{volume}", params={"force": "true"})
            if removed.status_code not in (204, 404):
                self._raise_for_server_error(removed)
        self._forget(handle["containerId"])

    def _forget(self, container_id: str) -> None:
        self._cpu_seen.pop(container_id, None)
        self._started_at.pop(container_id, None)
        self._running.discard(container_id)
        self._quiet_status.pop(container_id, None)
        self._last_log_read.pop(container_id, None)
        self._doorbells.forget(container_id)

    async def watch(self, handle: Handle, max_wait: float) -> None:
        container_id = handle["containerId"]
        await self._doorbells.wait(container_id, max_wait, running=container_id in self._running)


def spec_archive(document: dict[str, Any]) -> bytes:
    """The job spec file at SPEC_PATH, as a tar for the Docker API's PUT /archive."""
    content = json.dumps(document, indent=2).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for directory in ("cortex", "cortex/spec"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(SPEC_PATH.lstrip("/"))
        info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(content))
    return archive.getvalue()


def _exited(code: int, started_at: datetime | None, *, oom_killed: bool = False) -> WorkloadStatus:
    if oom_killed or code == _KILLED:
        return WorkloadStatus(
            WorkloadState.EXITED,
            exit_code=code,
            reason=FailureReason.OOM,
            message="killed: out of memory (or sent SIGKILL by someone else)",
            started_at=started_at,
        )
    return WorkloadStatus(
        WorkloadState.EXITED,
        exit_code=code,
        reason=FailureReason.EXIT_CODE if code else None,
        message=f"exited with code {code}" if code else None,
        started_at=started_at,
    )


def _name_in_use(response: httpx.Response) -> bool:
    """podman answers a name clash with 500 "...is already in use" where Docker says 409."""
    return response.status_code == 500 and "already in use" in response.text


class _Doorbells:
    """Wake the watch of a container as soon as it starts, prints or dies, so that logs are
    live and exits are noticed at once, without polling.

    Deaths come from one Docker `/events` stream per adapter; output from one following
    `logs` request per running container, read only as a signal (the engine reads the lines
    themselves with a cursor). Both are cheap for the runtime, unlike a blocking `wait` per
    container. While a stream is down, watches simply time out and the engine polls.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        # Counts the event stream's connections; None while it is down. A status inspected
        # under one connection stays true only while that connection lasts.
        self._generation = 0
        self._live: int | None = None
        # Containers that something happened to since their last inspect, and that printed
        # since their last log read (both kept only for the quiet-look shortcuts).
        self._stirred: set[str] = set()
        self._printed: set[str] = set()
        self._bells: dict[str, asyncio.Event] = {}
        self._woken_at: dict[str, float] = {}
        self._log_followers: dict[str, asyncio.Task[None]] = {}
        self._deaths: dict[str, float] = {}
        self._exit_codes: dict[str, int] = {}
        self._events: asyncio.Task[None] | None = None

    def expect(self, container_id: str) -> None:
        """The container is about to start: ring when it does."""
        self._follow_events()
        self._bells.setdefault(container_id, asyncio.Event())

    def running(self, container_id: str) -> None:
        """The container runs: ring when it prints."""
        self._follow_events()
        follower = self._log_followers.get(container_id)
        if follower is None or follower.done():
            self._bells.setdefault(container_id, asyncio.Event())
            self._log_followers[container_id] = asyncio.create_task(self._follow_logs(container_id))

    def forget(self, container_id: str) -> None:
        follower = self._log_followers.pop(container_id, None)
        if follower is not None:
            follower.cancel()
        self._bells.pop(container_id, None)
        self._woken_at.pop(container_id, None)
        self._stirred.discard(container_id)
        self._printed.discard(container_id)

    def looking(self, container_id: str) -> int | None:
        """An inspect of the container starts now: returns the event stream's generation
        (None while it is down). Anything rung from here on counts as news after it."""
        self._stirred.discard(container_id)
        return self._live

    def unchanged(self, container_id: str, generation: int) -> bool:
        """Nothing happened to the container since it was inspected under `generation`, as
        far as the streams can tell: the same event stream is still connected, no event or
        output rang, and its output is still followed."""
        return (
            self._live == generation
            and container_id not in self._stirred
            and container_id not in self._deaths
            and self._following(container_id)
        )

    def reading(self, container_id: str) -> None:
        """A read of the container's log starts now."""
        self._printed.discard(container_id)

    def silent(self, container_id: str) -> bool:
        """The container printed nothing since its log was last read (its output is
        followed, so it would have rung)."""
        return container_id not in self._printed and self._following(container_id)

    def _following(self, container_id: str) -> bool:
        follower = self._log_followers.get(container_id)
        return follower is not None and not follower.done()

    async def wait(self, container_id: str, max_wait: float, *, running: bool) -> None:
        """Until the container starts, prints or dies, at most `max_wait` seconds. `running`:
        it was last seen running, so a death seen since means it changed."""
        self._follow_events()
        if running and container_id in self._deaths:
            return
        bell = self._bells.setdefault(container_id, asyncio.Event())
        try:
            async with asyncio.timeout(max_wait):
                await bell.wait()
        except TimeoutError:
            return
        bell.clear()
        # A chatty container wakes the engine at most this often; its lines are read in
        # batches. A death ends the wait at once.
        since = time.monotonic() - self._woken_at.get(container_id, 0.0)
        if since < MIN_WAKE_SECONDS and container_id not in self._deaths:
            await asyncio.sleep(MIN_WAKE_SECONDS - since)
        self._woken_at[container_id] = time.monotonic()

    async def aclose(self) -> None:
        tasks = [t for t in [self._events, *self._log_followers.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._log_followers.clear()

    def _ring(self, container_id: str) -> None:
        self._stirred.add(container_id)
        bell = self._bells.get(container_id)
        if bell is not None:
            bell.set()

    def _follow_events(self) -> None:
        if self._events is None or self._events.done():
            self._events = asyncio.create_task(self._read_events())

    async def _read_events(self) -> None:
        delay = 0.5
        params = {"filters": json.dumps({"type": ["container"]})}
        while True:
            try:
                async with self._client.stream(
                    "GET", API + "/events", params=params, timeout=_STREAMING
                ) as response:
                    if response.status_code == 200:
                        delay = 0.5
                        self._generation += 1
                        self._live = self._generation
                        async for line in response.aiter_lines():
                            self._seen(line)
            except httpx.HTTPError as exc:
                logger.info("the container runtime's event stream broke: %s", exc)
            finally:
                self._live = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _seen(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        action = event.get("Action")
        if action not in ("start", "die"):
            return
        container_id = event.get("id") or (event.get("Actor") or {}).get("ID")
        if not container_id:
            return
        if action == "die":
            now = time.monotonic()
            self._deaths = {
                cid: at for cid, at in self._deaths.items() if now - at < RECENT_DEATH_SECONDS
            }
            self._deaths[container_id] = now
            self._exit_codes = {
                cid: code for cid, code in self._exit_codes.items() if cid in self._deaths
            }
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self._exit_codes[container_id] = int(event["Actor"]["Attributes"]["exitCode"])
        self._ring(container_id)

    def exit_code(self, container_id: str) -> int | None:
        """The exit code of the container's recent `die` event, if one was seen."""
        return self._exit_codes.get(container_id)

    async def _follow_logs(self, container_id: str) -> None:
        # `since` is in whole seconds: start a second early, so that nothing printed between
        # the engine's last read and this stream's start goes unannounced.
        params = {"follow": 1, "stdout": 1, "stderr": 1, "since": int(time.time()) - 1}
        try:
            async with self._client.stream(
                "GET", f"{API}/containers/{container_id}/logs", params=params, timeout=_STREAMING
            ) as response:
                if response.status_code != 200:
                    return
                async for _ in response.aiter_raw():
                    self._printed.add(container_id)
                    self._ring(container_id)
        except httpx.HTTPError as exc:
            logger.debug("following the output of %s stopped: %s", container_id, exc)
        finally:
            # The output is no longer followed (the container stopped, or the stream broke):
            # look now, and ask the runtime rather than memory (unless it is forgotten). The
            # end of a container's output comes well before podman's `die` event.
            if self._log_followers.get(container_id) is asyncio.current_task():
                self._printed.add(container_id)
                self._ring(container_id)


@dataclass(frozen=True)
class _Frame:
    stream: str
    stamp: str
    moment: datetime
    text: str


def _whole_lines(
    frames: list[_Frame], partial_lines_are_final: bool, limit: int
) -> tuple[tuple[LogLine, ...], int]:
    """Join the frames into lines, and say how many frames they used.

    podman stores a long or slowly written line in parts, one frame each (the last part ends
    with a newline), and the parts of stdout and stderr interleave. The frames used are always
    a prefix, so that the cursor can count them: a line is taken only with all its parts and
    with every line that started before it.
    """
    open_part: dict[str, int] = {}
    parts: list[list[int]] = []  # each line's frame indexes, in the order lines started
    line_of: list[int] = []
    for index, frame in enumerate(frames):
        line = open_part.get(frame.stream)
        if line is None:
            line = len(parts)
            parts.append([])
        parts[line].append(index)
        line_of.append(line)
        if frame.text.endswith("\n"):
            open_part.pop(frame.stream, None)
        else:
            open_part[frame.stream] = line
    unfinished = set() if partial_lines_are_final else set(open_part.values())

    used, taken_lines, reach = 0, 0, -1
    for index in range(len(frames)):
        line = line_of[index]
        if parts[line][0] == index:
            if line in unfinished or taken_lines == limit:
                break
            taken_lines += 1
        reach = max(reach, parts[line][-1])
        if reach == index:
            used = index + 1
    lines = tuple(
        LogLine(
            frames[indexes[0]].moment,
            "".join(frames[i].text for i in indexes).removesuffix("\n"),
            frames[indexes[0]].stream,
        )
        for indexes in parts
        if indexes[-1] < used
    )
    return lines, used


def _frames(raw: bytes) -> list[tuple[str, str]]:
    """Docker's multiplexed log stream: 8-byte headers (stream, 0, 0, 0, big-endian size)."""
    frames = []
    offset = 0
    while offset + 8 <= len(raw):
        stream_type, size = struct.unpack(">BxxxI", raw[offset : offset + 8])
        payload = raw[offset + 8 : offset + 8 + size]
        offset += 8 + size
        frames.append((_STREAMS.get(stream_type, "stdout"), payload.decode(errors="replace")))
    return frames
