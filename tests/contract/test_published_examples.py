"""Every example request of the published Jobs API documentation (shared/reference/jobs-api.md),
replayed in the document's order against a running gateway, and each answer checked against
the documented response: every documented field present with the documented type, and the
values the document fixes (those the request itself sets, states, `success`, a null shown
as null, a number shown non-zero set non-zero).

The gateway runs its engine on fakes of Akash and Render (the networks the examples name), in
a database of its own, so that the examples build on each other as a client's calls would:
the job the document creates is the one it then lists, reads, follows and cancels. The
document's placeholders (YOUR_API_KEY, job_1a2b3c4d5e6f, :id, :templateId, your-server.com)
become the real key, job, template and a local receiver."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app import database, migrate
from app.application import create_app
from app.settings import Settings
from tests.contract.published import PREFIX, Example, published
from tests.factories import Keys
from tests.fakes.akash import FakeAkash, running_fake
from tests.fakes.render import FakeRender
from tests.servers import uvicorn_server

AKASH_KEY = "ac.sk.test." + "cd" * 32
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# Values the document fixes: what the request set, the states it shows, the envelope's flag.
FIXED = {
    "success", "status", "provider", "image", "cpu", "memory", "storage", "duration",
    "currency", "env", "DEBUG", "port", "expose", "type", "line",
}  # fmt: skip
# The Akash fake reports no resource use (Akash's API has none to give): its series are empty.
EMPTY_ALLOWED = {"data.cpu", "data.memory", "data.network.rx", "data.network.tx"}
EXAMPLES = published()
XFAIL: dict[str, pytest.MarkDecorator] = {}


def _async_admin(url: str, statement: str) -> None:
    async def run() -> None:
        engine = database.create_engine(url, pool_size=1)
        try:
            async with engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(sa.text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="module")
def own_database(postgres_server_url: str) -> Iterator[str]:
    """A database of this module's own: the examples build on each other across tests, and
    the other tests' database is emptied after each test."""
    name = f"cortex_replay_{secrets.token_hex(4)}"
    _async_admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    url = make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    _async_admin(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)')


@dataclass
class World:
    url: str  # the API's base URL
    key: str
    akash: FakeAkash
    receiver: str
    names: dict[str, str] = field(default_factory=dict)  # placeholder -> real value
    answers: dict[int, httpx.Response] = field(default_factory=dict)  # by example line
    prepared: bool = False

    def concrete(self, text: str) -> str:
        for placeholder, value in self.names.items():
            text = text.replace(placeholder, value)
        return text


@pytest.fixture(scope="module")
async def world(own_database: str) -> AsyncIterator[World]:
    render = FakeRender(keys={"pk_test": "sk_test"}, step=0.05)
    async with (
        running_fake(api_key=AKASH_KEY, bid_delay=0.2, start_delay=0.1) as akash,
        uvicorn_server(render.app()) as render_url,
        uvicorn_server(_receiver()) as receiver,
    ):
        settings = Settings(
            database_url=own_database,
            engine_poll_interval=0.2,
            metrics_interval=0.5,
            akash_api_key=AKASH_KEY,
            akash_api_url=akash.console_url,
            akash_poll_interval=0.2,
            render_api_url=render_url,
            render_public_key="pk_test",
            render_secret_key="sk_test",
            render_poll_interval=0.2,
            webhook_allowed_networks="127.0.0.0/8",
        )
        async with uvicorn_server(create_app(settings)) as gateway:
            engine = database.create_engine(own_database, pool_size=1)
            key = await Keys(engine).create(account="reader", scope=("admin",))
            await engine.dispose()
            yield World(
                gateway + PREFIX,
                key,
                akash,
                receiver,
                names={
                    "YOUR_API_KEY": key,
                    "https://your-server.com/webhook": f"{receiver}/webhook",
                },
            )


def _receiver() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def hook(request: Any) -> Response:
        return Response(status_code=204)

    return Starlette(routes=[Route("/webhook", hook, methods=["POST"])])


async def _prepare(world: World, client: httpx.AsyncClient) -> None:
    """Before the first example: the job the document creates, running, printing the lines
    the document shows, and the template it creates (each replayed from the document)."""
    if world.prepared:
        return
    world.prepared = True  # once, even when it fails (the first example reports why)
    create = next(e for e in EXAMPLES if e.section == "Create Job")
    world.answers[create.line] = answer = await _send(world, client, create)
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["data"]["id"]
    world.names.update({"job_1a2b3c4d5e6f": job_id, ":id": job_id})
    for _ in range(200):
        job = (await client.get(f"{world.url}/jobs/{job_id}")).json()["data"]
        if job["status"] == "running":
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "running", job
    logs = next(e for e in EXAMPLES if e.section == "Get Job Logs")
    [deployment] = [d for d in world.akash.network.deployments.values() if d.job_id == job_id]
    assert deployment.workload is not None
    for entry in logs.response["data"]["logs"]:
        await deployment.workload._append(entry["line"])
    for _ in range(200):
        stored = (await client.get(f"{world.url}/jobs/{job_id}/logs")).json()["data"]["logs"]
        if len(stored) >= len(logs.response["data"]["logs"]):
            break
        await asyncio.sleep(0.1)
    template = next(e for e in EXAMPLES if e.method == "POST" and e.path == "/jobs/templates")
    world.answers[template.line] = answer = await _send(world, client, template)
    assert answer.status_code == 201, answer.text
    world.names[":templateId"] = answer.json()["data"]["id"]


async def _send(world: World, client: httpx.AsyncClient, example: Example) -> httpx.Response:
    headers = {name: world.concrete(value) for name, value in example.headers.items()}
    headers.setdefault("Authorization", f"Bearer {world.key}")
    body = None if example.body is None else json.loads(world.concrete(json.dumps(example.body)))
    url = world.url + world.concrete(example.path)
    if "follow=true" in example.path:
        return await _first_event(client, url, headers)
    return await client.request(example.method, url, headers=headers, json=body)


async def _first_event(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    """The stream's first data event, as a response whose JSON is that event's data."""
    async with client.stream("GET", url, headers=headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                return httpx.Response(stream.status_code, content=line[5:].strip())
    raise AssertionError("the stream ended without an event")


def mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` differs from the documented `expected` (see the module's docstring)."""
    key = path.rpartition(".")[2].partition("[")[0]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        found = []
        for name, value in expected.items():
            where = f"{path}.{name}" if path else name
            if name not in actual:
                found.append(f"{where}: missing")
            else:
                found += mismatches(value, actual[name], where)
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {actual!r}"]
        if not expected:
            return []
        if not actual:
            return [] if path in EMPTY_ALLOWED else [f"{path}: empty, the document shows items"]
        found = []
        for index, item in enumerate(expected):
            if isinstance(item, dict):
                if all(mismatches(item, candidate, f"{path}[]") for candidate in actual):
                    best = mismatches(item, actual[0], f"{path}[0]")
                    found.append(f"{path}[{index}]: no item matches the document's: {best}")
            else:
                found += [m for a in actual for m in mismatches(item, a, f"{path}[]")]
        return found
    if expected is None:
        return [] if actual is None else [f"{path}: the document shows null, got {actual!r}"]
    if isinstance(expected, bool | str):
        if type(actual) is not type(expected):
            return [f"{path}: expected a {type(expected).__name__}, got {actual!r}"]
        if key in FIXED and actual != expected:
            return [f"{path}: the document says {expected!r}, got {actual!r}"]
        if (key.endswith("At") or key == "timestamp") and not ISO_UTC.match(actual):
            return [f"{path}: {actual!r} is not an ISO 8601 UTC time"]
        return []
    if not isinstance(actual, int | float) or isinstance(actual, bool):
        return [f"{path}: expected a number, got {actual!r}"]
    if key in FIXED and actual != expected:
        return [f"{path}: the document says {expected!r}, got {actual!r}"]
    if expected != 0 and actual == 0:
        return [f"{path}: the document shows it set ({expected!r}), got 0"]
    return []


@pytest.mark.parametrize(
    "example",
    [pytest.param(e, marks=XFAIL.get(e.section, ()), id=e.name) for e in EXAMPLES],
)
async def test_example_answers_as_documented(world: World, example: Example) -> None:
    headers = {"Authorization": f"Bearer {world.key}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        await _prepare(world, client)
        answer = world.answers.get(example.line) or await _send(world, client, example)
    assert answer.status_code < 300, answer.text
    body = answer.json()
    if example.response is not None:
        assert mismatches(example.response, body) == []
    elif example.reads:
        # A stream: its first event has what the document's code reads, as the document's
        # first log line shows it.
        logs = next(e for e in EXAMPLES if e.section == "Get Job Logs").response
        first = logs["data"]["logs"][0]
        assert mismatches({name: first[name] for name in example.reads}, body) == []
    else:
        assert body["success"] is True, body


def test_the_comparison_names_each_difference() -> None:
    documented = {
        "success": True,
        "data": {"status": "pending", "cost": {"projected": 0.1}, "startedAt": None},
        "meta": {"pagination": {"total": 45}},
    }
    answered = {
        "success": True,
        "data": {"status": "queued", "cost": {"projected": 0}, "startedAt": "soon"},
        "meta": {},
    }
    assert mismatches(documented, answered) == [
        "data.status: the document says 'pending', got 'queued'",
        "data.cost.projected: the document shows it set (0.1), got 0",
        "data.startedAt: the document shows null, got 'soon'",
        "meta.pagination: missing",
    ]
