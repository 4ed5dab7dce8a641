"""Render: container jobs on Render's compute subnet, through OTOY's Dispersed API.

A gateway job becomes one `BATCH` job running the Docker image on a Render GPU node; the node
runs it as a job run (`/v1/job-runs`), which carries the container's logs and the URLs of its
ports. The network runs the image's own entrypoint (no command override), mounts no volumes,
and needs at least 60 s of run time: such specs are refused at submission. Render publishes no
price endpoint, so quotes come from the operator's hourly USD rate per GPU model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from providers import log_limits
from providers.base import Provider
from providers.errors import HandleNotFound, NotConfigured, Rejected, Unavailable
from providers.render.api import ApiError, BodyTooLarge, RenderApi
from providers.render.options import RenderOptions
from providers.spec_file import spec_env
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
    Refusal,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.dispersed.com"
# Example rates from RNP-019 (USD per GPU-hour); operators set their own.
DEFAULT_GPU_RATES: dict[str, float] = {
    "NVIDIA RTX 3090": 0.31,
    "NVIDIA RTX 4090": 0.35,
    "NVIDIA RTX 5090": 0.69,
}
# Memory of the GPU models we know, to pick the cheapest model that meets a minimum VRAM.
GPU_VRAM_GB: dict[str, int] = {
    "NVIDIA RTX 3090": 24,
    "NVIDIA RTX 4090": 24,
    "NVIDIA RTX 5090": 32,
    "NVIDIA A100": 80,
    "NVIDIA H100": 80,
    "NVIDIA H200": 141,
}
MIN_RUN_SECONDS = 60  # BATCH jobs need max_timeout_run_ms >= 60000
GB = 2**30
HEALTH_CACHE_SECONDS, UNHEALTHY_CACHE_SECONDS = 10.0, 2.0
TITLE_PREFIX = "cortex-"
FIND_PAGE_SIZE, FIND_MAX_PAGES = 100, 50
CANCEL_CONFIRM_SECONDS = 30.0

# Render's job states (PREPARING and FAILING are seen in third-party clients only).
_STATES: dict[str, WorkloadState] = {
    "PENDING": WorkloadState.PENDING,
    "ASSIGNED": WorkloadState.STARTING,
    "PREPARING": WorkloadState.STARTING,
    "RUNNING": WorkloadState.RUNNING,
    "COMPLETED": WorkloadState.EXITED,
    "FAILING": WorkloadState.FAILED,
    "FAILED": WorkloadState.FAILED,
    # Cancelled by someone else than the gateway (which sees its own cancel through cancel()).
    "CANCELLING": WorkloadState.FAILED,
    "CANCELLED": WorkloadState.FAILED,
}
_ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
# The job's status message in the states before it runs.
_WAITING = {
    "PENDING": "waiting for a node",
    "ASSIGNED": "assigned to a node, starting",
    "PREPARING": "preparing the node (pulling the image)",
}
# A job run's answer carries the run's whole log on every read: past this it is not read on,
# so a job printing without end costs the gateway this much per read, not all it printed.
MAX_RUN_BODY_BYTES = 16 * 2**20
_LOGS_KEY = re.compile(r'"logs"\s*:\s*"')


class RenderProvider(Provider):
    name: ClassVar[str] = "render"
    options_model = RenderOptions
    capabilities: ClassVar[Capabilities] = Capabilities(
        exposed_ports=True,
        command_override=False,
        volumes=False,
        gpus=True,
        min_duration_seconds=MIN_RUN_SECONDS,
        pricing="USD per GPU-hour by GPU model (the operator's rates: Render publishes no "
        "price list); a job without GPUs still holds one GPU node; billed for run time.",
    )

    def __init__(
        self,
        *,
        api_url: str = DEFAULT_API_URL,
        public_key: str | None = None,
        secret_key: str | None = None,
        poll_interval: float = 5.0,
        gpu_rates: Mapping[str, float] | None = None,
        assign_timeout: float = 300.0,
        start_timeout: float = 300.0,
        name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__()
        if name is not None:
            # One adapter class, several configured accounts or endpoints (tests, operators).
            self.name = name  # type: ignore[misc]
        self.api_url = api_url
        self.poll_interval = poll_interval
        self.gpu_rates = dict(DEFAULT_GPU_RATES if gpu_rates is None else gpu_rates)
        self.assign_timeout = assign_timeout
        self.start_timeout = start_timeout
        self._api = (
            RenderApi(api_url, public_key, secret_key, provider=self.name, transport=transport)
            if public_key and secret_key
            else None
        )
        self._health: tuple[float, Health] | None = None
        # Render is asked about a job at most once per poll interval: job uuid -> (when, view).
        self._seen: dict[str, tuple[float, dict[str, Any], list[dict[str, Any]]]] = {}
        # ... and its run's logs too, while it runs: run uuid -> when they were last read.
        self._log_reads: dict[str, float] = {}

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()

    @property
    def api(self) -> RenderApi:
        if self._api is None:
            raise NotConfigured(
                f"{self.name} is not configured: set CORTEX_RENDER_PUBLIC_KEY and "
                "CORTEX_RENDER_SECRET_KEY"
            )
        return self._api

    # -- capability ----------------------------------------------------------------------------

    def check(self, spec: WorkloadSpec) -> list[Refusal]:
        refusals = super().check(spec)
        if "@" in spec.image:
            refusals.append(
                Refusal("image", f"{self.name} pulls images by tag; use a tag, not a digest")
            )
        if any(port.protocol != "tcp" for port in spec.ports if port.expose):
            refusals.append(Refusal("ports", f"{self.name} exposes TCP ports only"))
        if spec.gpu is not None:
            if spec.gpu.model is not None and spec.gpu.model not in self.gpu_rates:
                refusals.append(
                    Refusal(
                        "gpu.model",
                        f"{self.name} has no rate for {spec.gpu.model!r}; "
                        f"known models: {', '.join(sorted(self.gpu_rates))}",
                    )
                )
            elif self._gpu_model(spec) is None:
                refusals.append(
                    Refusal("gpu.minVram", f"no GPU model {self.name} offers has that much memory")
                )
        return refusals

    def _gpu_model(self, spec: WorkloadSpec) -> str | None:
        """The model a spec is priced at: the one it names, else the cheapest that has
        enough memory (any model when it asks for no GPU)."""
        gpu = spec.gpu
        if gpu is not None and gpu.model is not None:
            return gpu.model
        need = _gb(gpu.min_vram_bytes) if gpu is not None and gpu.min_vram_bytes else 0
        fitting = [
            (rate, model)
            for model, rate in self.gpu_rates.items()
            if not need or GPU_VRAM_GB.get(model, 0) >= need
        ]
        return min(fitting)[1] if fitting else None

    async def health(self) -> Health:
        if self._api is None:
            return Health(
                False,
                "set CORTEX_RENDER_PUBLIC_KEY and CORTEX_RENDER_SECRET_KEY",
                configured=False,
            )
        now = time.monotonic()
        if self._health is not None:
            checked_at, health = self._health
            if now - checked_at < (
                HEALTH_CACHE_SECONDS if health.healthy else UNHEALTHY_CACHE_SECONDS
            ):
                return health
        try:
            await self.api.call("GET", "/v1/jobs", params={"limit": "1"})
            health = Health(True, detail={"apiUrl": self.api_url})
        except (Unavailable, ApiError) as exc:
            health = Health(False, f"{self.api_url}: {exc}")
        self._health = (now, health)
        return health

    async def quote(self, spec: WorkloadSpec) -> Quote:
        refusals = self.check(spec)
        model = self._gpu_model(spec)
        if refusals or model is None:
            raise Rejected(f"{self.name} cannot run this job", refusals)
        # A node runs one job: a job asking for no GPU still holds a node with one.
        count = spec.gpu.count if spec.gpu is not None else 1
        hourly = round(self.gpu_rates[model] * count, 6)
        return Quote(usd_per_hour=hourly, native_amount=hourly, native_unit=f"USD/h ({model})")

    # -- lifecycle -----------------------------------------------------------------------------

    async def submit(self, spec: WorkloadSpec) -> Handle:
        refusals = self.check(spec)
        if refusals:
            raise Rejected("; ".join(f"{r.field}: {r.message}" for r in refusals), refusals)
        title = f"{TITLE_PREFIX}{spec.job_id}"
        # An earlier attempt may have created the job and died before its handle was stored:
        # adopt it rather than start a second one.
        existing = await self._find_by_title(title)
        if existing is not None:
            return {"job": existing["uuid"], "title": title}
        try:
            created = await self.api.call("POST", "/v1/jobs", body=self._job_body(spec, title))
        except ApiError as exc:
            raise Rejected(f"Render refused the job: {exc.message}") from exc
        return {"job": created["uuid"], "title": title}

    async def _find_by_title(self, title: str) -> dict[str, Any] | None:
        for page in range(1, FIND_MAX_PAGES + 1):
            params = {"filter[title]": title, "limit": str(FIND_PAGE_SIZE), "page": str(page)}
            answer = await self.api.call("GET", "/v1/jobs", params=params)
            jobs = answer.get("data") or []
            for job in jobs:
                if job.get("title") == title:
                    return dict(job)
            if len(jobs) < FIND_PAGE_SIZE or page * FIND_PAGE_SIZE >= int(answer.get("total", 0)):
                return None
        return None

    def _job_body(self, spec: WorkloadSpec, title: str) -> dict[str, Any]:
        image, tag = split_image(spec.image)
        body: dict[str, Any] = {
            "task": "BATCH",
            "title": title,
            "description": f"Cortex Gateway job {spec.job_id}",
            "cpu_count": max(1, math.ceil(spec.cpu_millicores / 1000)),
            "gpu_count": spec.gpu.count if spec.gpu is not None else 0,
            "min_ram_gb": _gb(spec.memory_bytes),
            "min_storage_gb": _gb(spec.storage_bytes),
            "max_node_count": 1,
            "max_retry_count": 0,
            "max_timeout_assign_ms": int(self.assign_timeout * 1000),
            "max_timeout_start_ms": int(self.start_timeout * 1000),
            "max_timeout_run_ms": spec.duration_seconds * 1000,
            "allowed_region_codes": [],
            "parameters": {
                "type": "docker",
                "parameters": {
                    "image": image,
                    "tag": tag,
                    "env": {**spec.env, **spec_env(spec)},
                    "ports": [port.port for port in spec.ports if port.expose],
                },
            },
        }
        if spec.gpu is not None:
            if spec.gpu.model is not None:
                body["gpu_name"] = spec.gpu.model
            if spec.gpu.min_vram_bytes:
                body["min_vram_gb"] = _gb(spec.gpu.min_vram_bytes)
        return body

    async def _look(
        self, job_uuid: str, *, fresh: bool = False
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The job and its runs, asked at most once per poll interval."""
        seen = self._seen.get(job_uuid)
        if seen is not None and not fresh and time.monotonic() - seen[0] < self.poll_interval:
            return seen[1], seen[2]
        try:
            job = await self.api.call("GET", f"/v1/jobs/{job_uuid}")
        except ApiError as exc:
            if exc.status == 404:
                raise HandleNotFound(f"Render no longer knows job {job_uuid}") from exc
            raise
        runs = await self._runs(job_uuid)
        if job.get("status") in _ENDED:
            self._seen.pop(job_uuid, None)
            for run in runs:  # the final lines are read at once
                self._log_reads.pop(run["uuid"], None)
        else:
            self._seen[job_uuid] = (time.monotonic(), job, runs)
        return job, runs

    async def _runs(self, job_uuid: str) -> list[dict[str, Any]]:
        try:
            answer = await self.api.call(
                "GET", "/v1/job-runs", params={"filter[job_uuid]": job_uuid}
            )
        except ApiError as exc:
            if not exc.definitive:
                raise Unavailable(str(exc)) from exc
            raise
        runs = [
            run for run in answer.get("data") or [] if run.get("object", "job_run") == "job_run"
        ]
        return sorted(runs, key=lambda run: run.get("started_at_ms") or 0)

    async def status(self, handle: Handle) -> WorkloadStatus:
        try:
            job, runs = await self._look(handle["job"])
        except ApiError as exc:
            # A refusal to even describe the job will not change by asking again.
            return exc.failed_status()
        raw = str(job.get("status", "")).upper()
        state = _STATES.get(raw)
        if state is None:
            logger.warning("unmapped Render job status %r for %s", raw, handle["job"])
            state = WorkloadState.UNKNOWN
        run = runs[-1] if runs else None
        new_handle: Handle | None = None
        notes: tuple[str, ...] = ()
        if run is not None and handle.get("run") != run["uuid"]:
            new_handle = {**handle, "run": run["uuid"]}
            notes = (f"Render assigned job {handle['job']} to a node (run {run['uuid']}).",)
        started_at = _from_ms(run.get("started_at_ms")) if run is not None else None
        common: dict[str, Any] = {"started_at": started_at, "handle": new_handle, "notes": notes}
        if state is WorkloadState.RUNNING:
            return WorkloadStatus(state, endpoints=_endpoints(run), **common)
        if state is WorkloadState.EXITED:
            return WorkloadStatus(state, exit_code=0, **common)
        if state is WorkloadState.FAILED:
            reason, message = self._failure(raw, job, run)
            return WorkloadStatus(state, reason=reason, message=message, **common)
        return WorkloadStatus(state, waiting=_WAITING.get(raw), **common)

    def _failure(
        self, raw: str, job: dict[str, Any], run: dict[str, Any] | None
    ) -> tuple[FailureReason, str]:
        said = job.get("status_message") or job.get("error") or ""
        if raw in ("CANCELLING", "CANCELLED"):
            return FailureReason.PROVIDER_ERROR, f"The job was cancelled on Render. {said}".strip()
        if run is None:
            return (
                FailureReason.NOT_ASSIGNED,
                f"No Render node took the job within {self.assign_timeout:g} s. {said}".strip(),
            )
        if run.get("started_at_ms") is None:
            return (
                FailureReason.PROVIDER_ERROR,
                f"The Render node could not start the container (image pull or start "
                f"failed within {self.start_timeout:g} s). {said}".strip(),
            )
        limit = job.get("max_timeout_run_ms")
        if limit and (run.get("duration_ms") or 0) >= limit:
            return FailureReason.TIMEOUT, "Render stopped the container at its run time limit."
        # Render reports no exit code: a failed BATCH run is a container that failed.
        return (
            FailureReason.EXIT_CODE,
            f"The container failed on the Render node (no exit code reported). {said}".strip(),
        )

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        run_uuid = handle.get("run")
        if run_uuid is None:
            return LogBatch((), cursor)
        read_at = self._log_reads.get(run_uuid)
        if read_at is not None and time.monotonic() - read_at < self.poll_interval:
            return LogBatch((), cursor)
        try:
            run = await self.api.call(
                "GET", f"/v1/job-runs/{run_uuid}", max_bytes=MAX_RUN_BODY_BYTES
            )
        except ApiError as exc:
            if exc.status == 404:
                raise HandleNotFound(f"Render no longer knows run {run_uuid}") from exc
            raise Unavailable(str(exc)) from exc
        except BodyTooLarge as exc:
            return _too_large(exc.head, cursor)
        lines = [log_limits.clip(line) for line in _log_lines(run.get("logs"))]
        ended = str(run.get("status", "")).upper() in _ENDED
        if ended:
            self._log_reads.pop(run_uuid, None)
        else:
            self._log_reads[run_uuid] = time.monotonic()
        if lines and not ended and not str(run.get("logs", "")).endswith("\n"):
            lines = lines[:-1]  # the last line may still be growing
        done = int(cursor) if cursor else 0
        now = datetime.now(UTC)
        fresh = tuple(LogLine(now, line) for line in lines[done:])
        return LogBatch(fresh, str(done + len(fresh)))

    async def metrics(self, handle: Handle) -> MetricSample | None:
        return None  # Render publishes no resource usage of a job run

    async def cancel(self, handle: Handle) -> None:
        job_uuid = handle["job"]
        try:
            await self.api.call(
                "PUT",
                f"/v1/jobs/{job_uuid}/cancel",
                body={"reason": "cancelled through Cortex Gateway"},
            )
        except ApiError as exc:
            if exc.status == 404:
                raise HandleNotFound(f"Render no longer knows job {job_uuid}") from exc
            if exc.status != 409:  # 409: it has already ended
                raise Unavailable(str(exc)) from exc
        deadline = time.monotonic() + CANCEL_CONFIRM_SECONDS
        while True:
            job = await self._look_to_stop(job_uuid)
            if job.get("status") in _ENDED:
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"Render has not confirmed cancelling job {job_uuid} yet")
            await asyncio.sleep(min(self.poll_interval, 1.0))

    async def _look_to_stop(self, job_uuid: str) -> dict[str, Any]:
        """The job, fresh; stopping goes on trying whatever Render answers."""
        try:
            job, _ = await self._look(job_uuid, fresh=True)
        except ApiError as exc:
            raise Unavailable(str(exc)) from exc
        return job

    async def release(self, handle: Handle) -> None:
        """A BATCH job that ended holds nothing; one that has not (a job given up before a
        node took it) is cancelled, so that it never starts later."""
        try:
            job = await self._look_to_stop(handle["job"])
        except HandleNotFound:
            return
        if job.get("status") in _ENDED or job.get("status") == "CANCELLING":
            return
        try:
            await self.api.call(
                "PUT",
                f"/v1/jobs/{handle['job']}/cancel",
                body={"reason": "released by Cortex Gateway"},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise Unavailable(str(exc)) from exc


def split_image(reference: str) -> tuple[str, str]:
    """`ghcr.io/org/app:1.2` -> (`ghcr.io/org/app`, `1.2`); no tag means `latest`. A colon
    before the last slash belongs to a registry port."""
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:
        return reference, "latest"
    return name, tag


def _gb(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / GB))


def _from_ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None


def _endpoints(run: dict[str, Any] | None) -> tuple[Endpoint, ...]:
    """A run's `node_urls`: `description` is the container port, `port` the public one."""
    if run is None:
        return ()
    found = []
    for url in run.get("node_urls") or []:
        try:
            container_port = int(str(url.get("description", "")).split("/")[0])
        except ValueError:
            continue
        scheme = str(url.get("protocol") or "http").lower()
        found.append(Endpoint(container_port, f"{scheme}://{url['hostname']}:{url['port']}"))
    return tuple(found)


def _too_large(head: bytes, cursor: str | None) -> LogBatch:
    """The lines of a run whose answer is over MAX_RUN_BODY_BYTES: those in the part read,
    then one line saying the rest could not be read. Every later read finds the same."""
    lines = [log_limits.clip(line) for line in _logs_in_head(head)]
    lines.append(
        f"… [the run's log is over {MAX_RUN_BODY_BYTES} bytes: the gateway read only its "
        "beginning, the rest is on Render]"
    )
    done = int(cursor) if cursor else 0
    now = datetime.now(UTC)
    fresh = tuple(LogLine(now, line) for line in lines[done:])
    return LogBatch(fresh, str(done + len(fresh)))


def _logs_in_head(head: bytes) -> list[str]:
    """The complete lines of the `logs` string in the first bytes of a job run's JSON."""
    text = head.decode(errors="ignore")
    at = _LOGS_KEY.search(text)
    if at is None:
        return []
    rest = '"' + text[at.end() :]
    decoder = json.JSONDecoder()
    with contextlib.suppress(ValueError):
        return str(decoder.raw_decode(rest)[0]).splitlines()
    # Cut inside the string, perhaps inside an escape (`\u00e9` is six characters).
    for cut in range(7):
        with contextlib.suppress(ValueError):
            whole = decoder.raw_decode(rest[: len(rest) - cut] + '"')[0]
            return str(whole).split("\n")[:-1]  # the last line was cut
    return []


def _log_lines(logs: Any) -> list[str]:
    if not logs:
        return []
    if isinstance(logs, list):
        return [
            str(entry.get("message", entry)) if isinstance(entry, dict) else str(entry)
            for entry in logs
        ]
    return str(logs).splitlines()
