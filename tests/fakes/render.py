"""A fake of Render's compute API (OTOY's Dispersed API) on a loopback port.

It speaks the documented wire format (../shared/reference/providers/render.md, section 1) and
checks what the real API checks: every request must carry `X-API-Key`, `X-Time` (UTC ms, within
5 minutes of the server), `X-Nonce` (32 hex, never seen before) and `X-Signature` (hex
HMAC-SHA256 with the secret key over `publicKey|timestamp|nonce|METHOD|path|query|
sha256hex(body)`, computed here from the raw query string and the raw body received); anything
else answers 401. Errors are `{"error": {"code", "message"}}`, lists
`{"data", "page", "limit", "total"}`.

Jobs go through the documented life: PENDING -> ASSIGNED (a free node with the GPUs asked
for; none within `max_timeout_assign_ms` -> FAILED, with no run) -> PREPARING -> RUNNING (the
run gets `started_at_ms` and `node_urls`) -> COMPLETED or FAILED (also past
`max_timeout_run_ms`); `PUT /v1/jobs/{uuid}/cancel` -> CANCELLING -> CANCELLED. Each step
takes `step` seconds; the state is worked out from the clock on every request.

Nothing runs an image: the simulated container's behaviour comes from the job's env, which
the real network passes to the container too: `RENDER_FAKE_OUTPUT` (lines it prints, spread
over its run), `RENDER_FAKE_SECONDS` (run time, default 1), `RENDER_FAKE_FAIL=1` (it fails).

Marked unverified in the reference (seen only in third-party clients), reproduced as they
describe: `GET /v1/jobs`, `GET /v1/jobs/{uuid}`, `PUT /v1/jobs/{uuid}/cancel` with
`{"reason"}`, the PREPARING state and the error shape. `filter[title]` on `GET /v1/jobs` is
our assumption, and the adapter also matches titles itself.

Run it alone: `python -m tests.fakes.render --port 8787 --public-key pk_test --secret-key sk_test`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import time
import uuid as uuid_module
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CLOCK_SKEW_MS = 5 * 60 * 1000
_NONCE = re.compile(r"^[0-9a-f]{32}$")
_ENDED = {"COMPLETED", "FAILED", "CANCELLED"}
_JOB_FIELDS = {
    "task",
    "title",
    "description",
    "cpu_count",
    "gpu_count",
    "gpu_name",
    "gpu_registry_uuid",
    "min_ram_gb",
    "min_storage_gb",
    "min_vram_gb",
    "max_node_count",
    "max_retry_count",
    "max_timeout_assign_ms",
    "max_timeout_start_ms",
    "max_timeout_run_ms",
    "allowed_region_codes",
    "parameters",
}
_DOCKER_FIELDS = {
    "image",
    "tag",
    "env",
    "ports",
    "volumes",
    "sshkey",
    "allowed_ips",
    "host",
    "user",
    "secret",
    "imagesrc",
}


@dataclass
class Node:
    gpu_name: str
    gpus: int = 1
    vram_gb: int = 24
    hostname: str = "node.fake-render.test"
    busy_with: str | None = None


@dataclass
class FakeJob:
    uuid: str
    body: dict[str, Any]
    created_ms: int
    status: str = "PENDING"
    status_message: str | None = None
    changed_ms: int = 0
    node: Node | None = None
    run: dict[str, Any] | None = None
    cancel_reason: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return dict(self.body["parameters"]["parameters"].get("env") or {})


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@dataclass
class FakeRender:
    keys: dict[str, str] = field(default_factory=lambda: {"pk_test": "sk_test"})
    nodes: list[Node] = field(
        default_factory=lambda: [Node("NVIDIA RTX 4090", gpus=2, vram_gb=24) for _ in range(4)]
    )
    step: float = 0.1
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    # (method, path, status) of every request, for tests.
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    # -- authentication --------------------------------------------------------------------

    def authenticate(self, request: Request, body: bytes) -> None:
        headers = request.headers
        public_key = headers.get("x-api-key", "")
        timestamp, nonce = headers.get("x-time", ""), headers.get("x-nonce", "")
        given = headers.get("x-signature", "")
        secret = self.keys.get(public_key)
        if secret is None:
            raise ApiError(401, "INVALID_API_KEY", "unknown or missing X-API-Key")
        if not timestamp.isdigit() or abs(self.now_ms() - int(timestamp)) > CLOCK_SKEW_MS:
            raise ApiError(401, "INVALID_TIMESTAMP", "X-Time is not within 5 minutes of now")
        if not _NONCE.match(nonce):
            raise ApiError(401, "INVALID_NONCE", "X-Nonce must be 32 hex characters")
        canonical = "|".join(
            (
                public_key,
                timestamp,
                nonce,
                request.method.upper(),
                request.url.path,
                request.scope["query_string"].decode("latin-1"),
                hashlib.sha256(body).hexdigest(),
            )
        )
        expected = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            raise ApiError(401, "INVALID_SIGNATURE", "X-Signature does not match the request")
        if nonce in self.nonces:
            raise ApiError(401, "NONCE_REUSED", "X-Nonce was used before")
        self.nonces.add(nonce)

    # -- the state machine -----------------------------------------------------------------

    def _matching_node(self, job: FakeJob) -> Node | None:
        body = job.body
        for node in self.nodes:
            if node.busy_with is not None or node.gpus < (body.get("gpu_count") or 0):
                continue
            if body.get("gpu_name") and body["gpu_name"] != node.gpu_name:
                continue
            if (body.get("min_vram_gb") or 0) > node.vram_gb:
                continue
            return node
        return None

    def _end(self, job: FakeJob, status: str, at: int, message: str | None = None) -> None:
        job.status, job.changed_ms, job.status_message = status, at, message
        if job.run is not None:
            job.run["ended_at_ms"] = at
            if job.run["started_at_ms"] is not None:
                job.run["duration_ms"] = at - job.run["started_at_ms"]
            job.run["node_urls"] = []
        if job.node is not None:
            job.node.busy_with = None
            job.node = None

    def advance(self, job: FakeJob) -> None:
        """Apply every transition that is due by now, each at the time it was due."""
        now, step = self.now_ms(), int(self.step * 1000)
        while True:
            due = job.changed_ms + step
            if job.status == "PENDING":
                node = self._matching_node(job) if now >= due else None
                if node is not None:
                    node.busy_with, job.node = job.uuid, node
                    # At once if it was due; later if it waited for a node to free up.
                    job.status, job.changed_ms = "ASSIGNED", due if now - due < step else now
                    job.run = {
                        "uuid": str(uuid_module.uuid4()),
                        "object": "job_run",
                        "job_uuid": job.uuid,
                        "started_at_ms": None,
                        "ended_at_ms": None,
                        "duration_ms": None,
                        "node_urls": [],
                    }
                    continue
                limit = job.body.get("max_timeout_assign_ms") or 300_000
                if now >= job.created_ms + limit:
                    self._end(job, "FAILED", job.created_ms + limit, "no node was assigned in time")
                    continue
                return
            if job.status == "CANCELLING" and now >= due:
                self._end(job, "CANCELLED", due, job.cancel_reason)
                continue
            if job.status in ("ASSIGNED", "PREPARING") and now >= due:
                job.status = "PREPARING" if job.status == "ASSIGNED" else "RUNNING"
                job.changed_ms = due
                if job.status == "RUNNING":
                    self._start_run(job, due)
                continue
            if job.status == "RUNNING":
                run = job.run or {}
                seconds = float(job.env.get("RENDER_FAKE_SECONDS", "1"))
                limit = job.body.get("max_timeout_run_ms") or 0
                finish = run["started_at_ms"] + int(seconds * 1000)
                if limit and run["started_at_ms"] + limit <= min(now, finish):
                    self._end(job, "FAILED", run["started_at_ms"] + limit, "run timeout reached")
                    continue
                if now >= finish:
                    failed = job.env.get("RENDER_FAKE_FAIL") == "1"
                    status = "FAILED" if failed else "COMPLETED"
                    self._end(job, status, finish, "container failed" if failed else None)
                    continue
            return

    def _start_run(self, job: FakeJob, at: int) -> None:
        run, node = job.run, job.node
        assert run is not None and node is not None
        run["started_at_ms"] = at
        ports = job.body["parameters"]["parameters"].get("ports") or []
        run["node_urls"] = [
            {
                "description": str(port),
                "hostname": node.hostname,
                "port": 30000 + index,
                "protocol": "http",
            }
            for index, port in enumerate(ports)
        ]

    def logs_of(self, job: FakeJob) -> str:
        run = job.run
        if run is None or run["started_at_ms"] is None:
            return ""
        lines = [line for line in job.env.get("RENDER_FAKE_OUTPUT", "").split("\n") if line]
        # A job printing far more than a test should spell out: its lines this many times.
        lines *= int(job.env.get("RENDER_FAKE_REPEAT", "1"))
        seconds = float(job.env.get("RENDER_FAKE_SECONDS", "1"))
        until = run["ended_at_ms"] or self.now_ms()
        elapsed = (until - run["started_at_ms"]) / 1000
        if run["ended_at_ms"] is not None and job.status == "COMPLETED":
            shown = len(lines)
        else:
            shown = sum(1 for i in range(len(lines)) if elapsed >= seconds * i / (len(lines) + 1))
        return "".join(f"{line}\n" for line in lines[:shown])

    # -- wire shapes -----------------------------------------------------------------------

    def job_json(self, job: FakeJob) -> dict[str, Any]:
        return {
            **job.body,
            "object": "job",
            "uuid": job.uuid,
            "status": job.status,
            "status_message": job.status_message,
            "created_at_ms": job.created_ms,
        }

    def run_json(self, job: FakeJob, *, with_logs: bool) -> dict[str, Any]:
        run = {**(job.run or {}), "status": job.status}
        if with_logs:
            run["logs"] = self.logs_of(job)
        return run

    def validate(self, body: Any) -> dict[str, Any]:
        def bad(message: str) -> ApiError:
            return ApiError(400, "VALIDATION_ERROR", message)

        if not isinstance(body, dict):
            raise bad("the body must be a JSON object")
        unknown = set(body) - _JOB_FIELDS
        if unknown:
            raise bad(f"unknown fields: {sorted(unknown)}")
        task = body.get("task")
        if task == "BATCH":
            run_ms = body.get("max_timeout_run_ms")
            if not isinstance(run_ms, int) or run_ms < 60_000:
                raise bad("max_timeout_run_ms: BATCH jobs need at least 60000")
        elif task == "PERSISTENT":
            if body.get("max_timeout_run_ms") is not None:
                raise bad("max_timeout_run_ms: must be null for PERSISTENT jobs")
        else:
            raise bad("task: must be BATCH or PERSISTENT")
        if body.get("gpu_name") and body.get("gpu_registry_uuid"):
            raise bad("give gpu_name or gpu_registry_uuid, not both")
        for name in ("cpu_count", "gpu_count", "min_ram_gb", "min_storage_gb"):
            if name in body and (not isinstance(body[name], int) or body[name] < 0):
                raise bad(f"{name}: must be a non-negative integer")
        parameters = body.get("parameters") or {}
        if parameters.get("type") != "docker":
            raise bad("parameters.type: must be docker")
        docker = parameters.get("parameters") or {}
        if set(docker) - _DOCKER_FIELDS:
            raise bad(
                f"parameters.parameters: unknown fields {sorted(set(docker) - _DOCKER_FIELDS)}"
            )
        if not isinstance(docker.get("image"), str) or not docker["image"]:
            raise bad("parameters.parameters.image: required")
        env = docker.get("env") or {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise bad("parameters.parameters.env: strings only")
        if not all(isinstance(p, int) for p in docker.get("ports") or []):
            raise bad("parameters.parameters.ports: integers only")
        return body

    # -- routes ----------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def handle(request: Request) -> JSONResponse:
            body = await request.body()
            try:
                self.authenticate(request, body)
                response = await self.route(request, body)
            except ApiError as exc:
                response = _error(exc.status, exc.code, exc.message)
            self.seen.append((request.method, request.url.path, response.status_code))
            return response

        return Starlette(
            routes=[
                Route("/v1/{rest:path}", handle, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )

    def _job(self, job_uuid: str) -> FakeJob:
        job = self.jobs.get(job_uuid)
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"job {job_uuid} not found")
        self.advance(job)
        return job

    @staticmethod
    def _page(request: Request, items: list[dict[str, Any]]) -> JSONResponse:
        page = int(request.query_params.get("page", "1"))
        limit = int(request.query_params.get("limit", "20"))
        chunk = items[(page - 1) * limit : page * limit]
        return JSONResponse({"data": chunk, "page": page, "limit": limit, "total": len(items)})

    async def route(self, request: Request, raw: bytes) -> JSONResponse:
        method, parts = request.method, request.url.path.strip("/").split("/")[1:]
        params = request.query_params
        if parts == ["jobs"] and method == "POST":
            try:
                body = self.validate(json.loads(raw or b"null"))
            except json.JSONDecodeError as exc:
                raise ApiError(400, "VALIDATION_ERROR", "the body is not JSON") from exc
            job = FakeJob(str(uuid_module.uuid4()), body, self.now_ms())
            job.changed_ms = job.created_ms
            self.jobs[job.uuid] = job
            return JSONResponse(self.job_json(job), status_code=201)
        if parts == ["jobs"] and method == "GET":
            jobs = list(self.jobs.values())
            for job in jobs:
                self.advance(job)
            if params.get("filter[title]"):
                jobs = [j for j in jobs if j.body.get("title") == params["filter[title]"]]
            if params.get("filter[status]"):
                wanted = set(params["filter[status]"].split(","))
                jobs = [j for j in jobs if j.status in wanted]
            return self._page(request, [self.job_json(j) for j in reversed(jobs)])
        if len(parts) == 2 and parts[0] == "jobs" and method == "GET":
            return JSONResponse(self.job_json(self._job(parts[1])))
        if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "cancel" and method == "PUT":
            job = self._job(parts[1])
            if job.status in _ENDED:
                raise ApiError(409, "JOB_NOT_CANCELLABLE", f"job is {job.status}")
            if job.status != "CANCELLING":
                reason = (json.loads(raw) if raw else {}).get("reason")
                job.status, job.changed_ms, job.cancel_reason = "CANCELLING", self.now_ms(), reason
            return JSONResponse(self.job_json(job))
        if parts == ["job-runs"] and method == "GET":
            job_uuid = params.get("filter[job_uuid]")
            jobs = [self._job(job_uuid)] if job_uuid in self.jobs else []
            if job_uuid is None:
                jobs = list(self.jobs.values())
            runs = [self.run_json(j, with_logs=False) for j in jobs if j.run is not None]
            return self._page(request, runs)
        if len(parts) == 2 and parts[0] == "job-runs" and method == "GET":
            for job in self.jobs.values():
                if job.run is not None and job.run["uuid"] == parts[1]:
                    self.advance(job)
                    return JSONResponse(self.run_json(job, with_logs=True))
            raise ApiError(404, "NOT_FOUND", f"job run {parts[1]} not found")
        raise ApiError(404, "NOT_FOUND", f"no route {method} {request.url.path}")


def parse_node(text: str) -> Node:
    """`MODEL[:GPUS[:VRAM_GB]]`, e.g. `NVIDIA RTX 4090:2:24`."""
    model, _, rest = text.partition(":")
    gpus, _, vram = rest.partition(":")
    return Node(model, int(gpus or 1), int(vram or 24))


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--public-key", default="pk_test")
    parser.add_argument("--secret-key", default="sk_test")
    parser.add_argument("--step", type=float, default=0.5, help="seconds per state change")
    parser.add_argument(
        "--node",
        action="append",
        type=parse_node,
        help="MODEL[:GPUS[:VRAM_GB]], repeatable (default: four 'NVIDIA RTX 4090:2:24')",
    )
    parser.add_argument("--no-nodes", action="store_true", help="no node ever takes a job")
    options = parser.parse_args()
    fake = FakeRender(keys={options.public_key: options.secret_key}, step=options.step)
    if options.no_nodes:
        fake.nodes = []
    elif options.node:
        fake.nodes = options.node
    uvicorn.run(fake.app(), host=options.host, port=options.port, log_level="info")


if __name__ == "__main__":
    main()
