"""GET /healthz (the process is up) and GET /readyz (database, migrations, engine)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from app import migrate
from app.application import create_app
from app.settings import Settings
from tests.engine.conftest import engine_settings
from tests.factories import API
from tests.ops.conftest import ScratchDatabase, admin


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """A client of `app` with its lifespan entered, and the lifespan's state."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client, dict(state or {})


def api_only(url: str) -> Settings:
    return Settings(database_url=url, engine_enabled=False, webhooks_enabled=False)


def failing_checks(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "NOT_READY"
    return {detail["field"]: detail["message"] for detail in body["error"]["details"]}


class TestHealthz:
    async def test_answers_200_while_the_process_runs(self, app_client: httpx.AsyncClient) -> None:
        response = await app_client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"success": True, "data": {"status": "ok"}}


class TestReadyz:
    async def test_ready_with_database_migrations_and_engine(self, database_url: str) -> None:
        async with running(create_app(engine_settings(database_url))) as (client, _):
            response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {
            "status": "ready",
            "checks": {"database": "ok", "migrations": "ok", "engine": "ok"},
        }

    async def test_an_api_only_process_is_ready_without_an_engine(
        self, app_client: httpx.AsyncClient
    ) -> None:
        response = await app_client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["data"]["checks"]["engine"] == "disabled"

    async def test_503_while_the_database_refuses_connections_then_ready_again(
        self, scratch_database: ScratchDatabase, postgres_server_url: str
    ) -> None:
        async with (
            scratch_database() as url,
            running(create_app(api_only(url))) as (client, _),
        ):
            name = make_url(url).database
            assert (await client.get("/readyz")).status_code == 200
            await admin(postgres_server_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin(
                postgres_server_url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name",
                name=name,
            )

            failing = failing_checks(await client.get("/readyz"))
            assert set(failing) == {"database"}
            assert failing["database"].startswith("unreachable")
            assert (await client.get("/healthz")).status_code == 200, "the process is still up"
            # The API answers 503 meanwhile (worth a retry, unlike a 500), with the request id.
            failed = await client.get(
                f"{API}/jobs", headers={"Authorization": "Bearer cgw_x", "X-Request-ID": "r-503"}
            )
            assert failed.status_code == 503
            assert failed.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert int(failed.headers["Retry-After"]) > 0
            assert failed.headers["X-Request-ID"] == "r-503"

            await admin(postgres_server_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert (await client.get("/readyz")).status_code == 200

    async def test_503_while_migrations_are_behind_then_ready_once_migrated(
        self, scratch_database: ScratchDatabase
    ) -> None:
        scripts = ScriptDirectory.from_config(migrate.alembic_config(""))
        (head,) = scripts.get_heads()
        previous = scripts.get_revision(head).down_revision
        assert isinstance(previous, str)
        async with (
            scratch_database(previous) as url,
            running(create_app(api_only(url))) as (client, _),
        ):
            failing = failing_checks(await client.get("/readyz"))
            assert set(failing) == {"migrations"}
            assert f"at {previous}" in failing["migrations"]
            assert f"needs {head}" in failing["migrations"]
            assert "cortex-gateway migrate" in failing["migrations"]

            await asyncio.to_thread(migrate.upgrade, url)
            assert (await client.get("/readyz")).status_code == 200

    async def test_503_once_the_engine_has_stopped(self, database_url: str) -> None:
        async with running(create_app(engine_settings(database_url))) as (client, state):
            await state["engine"].stop()
            failing = failing_checks(await client.get("/readyz"))
        assert set(failing) == {"engine"}
