"""Retries on 429 and 503 honour Retry-After; a loopback server plays the busy gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cortex_client import AsyncClient, Client, errors
from tests.servers import uvicorn_server

JOB = {
    "id": "job_0123456789abcdef",
    "provider": "local",
    "status": "pending",
    "image": "busybox:latest",
    "cpu": 500,
    "memory": "64Mi",
    "storage": "1Gi",
    "duration": 60,
    "createdAt": "2026-11-25T14:10:51.440Z",
    "startedAt": None,
    "endedAt": None,
    "cost": {"current": 0.0, "projected": 0.0, "currency": "USD"},
    "config": {"env": {}, "ports": [], "volumes": [], "command": None, "args": None},
    "results": {"exitCode": None, "outputUrl": None, "reason": None, "message": None},
    "events": [],
}


class Busy:
    """Answers `refusals` error answers (with the given Retry-After) before a job."""

    def __init__(self, status: int, code: str, retry_after: str | None, refusals: int):
        self.status, self.code, self.retry_after, self.refusals = (
            status,
            code,
            retry_after,
            refusals,
        )
        self.arrivals: list[float] = []

    async def handle(self, request: Request) -> JSONResponse:
        self.arrivals.append(time.monotonic())
        if len(self.arrivals) <= self.refusals:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            body = {"success": False, "error": {"code": self.code, "message": "busy"}}
            return JSONResponse(body, status_code=self.status, headers=headers)
        return JSONResponse({"success": True, "data": JOB})


@pytest.fixture
async def busy() -> AsyncIterator[tuple[Busy, str]]:
    server = Busy(429, "RATE_LIMIT_EXCEEDED", "1", refusals=1)
    app = Starlette(routes=[Route("/api/plugin-core/jobs/{job_id}", server.handle)])
    async with uvicorn_server(app) as url:
        yield server, url


async def test_a_429_is_retried_after_retry_after_seconds(busy: tuple[Busy, str]) -> None:
    server, url = busy
    async with AsyncClient(url=url) as cortex:
        job = await cortex.jobs.get(JOB["id"])
    assert job.id == JOB["id"]
    assert len(server.arrivals) == 2
    assert server.arrivals[1] - server.arrivals[0] >= 0.95


async def test_an_http_date_retry_after_is_honoured_by_the_blocking_client(
    busy: tuple[Busy, str],
) -> None:
    server, url = busy
    server.status, server.code = 503, "PROVIDER_UNAVAILABLE"
    server.retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)

    def fetch() -> str:
        with Client(url=url) as cortex:
            return cortex.jobs.get(JOB["id"]).id

    assert await asyncio.to_thread(fetch) == JOB["id"]
    assert len(server.arrivals) == 2
    assert server.arrivals[1] - server.arrivals[0] >= 0.9  # the date has whole seconds


async def test_retries_stop_after_max_retries_with_the_error_of_the_last_answer(
    busy: tuple[Busy, str],
) -> None:
    server, url = busy
    server.refusals, server.retry_after = 10, "0"
    async with AsyncClient(url=url, max_retries=2) as cortex:
        with pytest.raises(errors.RateLimitExceeded) as raised:
            await cortex.jobs.get(JOB["id"])
    assert raised.value.status_code == 429
    assert len(server.arrivals) == 3


async def test_a_wait_longer_than_max_retry_wait_is_not_waited_for(
    busy: tuple[Busy, str],
) -> None:
    server, url = busy
    server.retry_after = "3600"
    started = time.monotonic()
    async with AsyncClient(url=url, max_retry_wait=5) as cortex:
        with pytest.raises(errors.RateLimitExceeded):
            await cortex.jobs.get(JOB["id"])
    assert time.monotonic() - started < 2
    assert len(server.arrivals) == 1


async def test_other_errors_are_not_retried(busy: tuple[Busy, str]) -> None:
    server, url = busy
    server.status, server.code = 500, "INTERNAL_ERROR"
    async with AsyncClient(url=url) as cortex:
        with pytest.raises(errors.InternalError):
            await cortex.jobs.get(JOB["id"])
    assert len(server.arrivals) == 1
