"""Real PostgreSQL for every test: the embedded server (or DATABASE_URL's), one fresh
database per run, migrated once, emptied after each test."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database, embedded_postgres, migrate
from app.application import create_app
from app.settings import Settings
from tests import factories
from tests.servers import lifespan_app

API = "/api/plugin-core"
ROOT = Path(__file__).resolve().parent.parent


def _ensure_container_runtime() -> None:
    """The local provider's tests run on a real Docker Engine API, never skipped: when
    DOCKER_HOST is unset, provide one (podman's service) with the project's own script."""
    if os.environ.get("DOCKER_HOST"):
        return
    export = subprocess.run(
        [str(ROOT / "scripts" / "container-runtime")],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout.strip()
    os.environ["DOCKER_HOST"] = export.rpartition("=")[2]


_ensure_container_runtime()


def _server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if os.environ.get("DATABASE_URL"):
        return database.normalize_url(os.environ["DATABASE_URL"])
    return embedded_postgres.start(Path(tmp_path_factory.mktemp("gateway-data")))


async def _admin(url: str, statement: str) -> None:
    engine = database.create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = _server_url(tmp_path_factory)
    yield url
    embedded_postgres.stop_all()


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A database of this run's own, migrated to head, dropped at the end."""
    name = f"cortex_test_{secrets.token_hex(4)}"
    asyncio.run(_admin(postgres_server_url, f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    asyncio.run(_admin(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, engine_enabled=False)


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = database.create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def _empty_tables(db: AsyncEngine) -> AsyncIterator[None]:
    yield
    async with db.begin() as connection:
        await connection.execute(
            sa.text("TRUNCATE accounts, api_keys, jobs, job_events, job_counts CASCADE")
        )


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An unauthenticated client of the gateway, in-process."""
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def keys(db: AsyncEngine) -> factories.Keys:
    return factories.Keys(db)


@pytest.fixture
async def client(app_client: httpx.AsyncClient, keys: factories.Keys) -> httpx.AsyncClient:
    """A client holding a jobs:read + jobs:write key of the account 'alpha'."""
    app_client.headers["Authorization"] = f"Bearer {await keys.create(account='alpha')}"
    return app_client


STUCK_AFTER_SECONDS = 120


@pytest.fixture(autouse=True)
async def _report_stuck_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """A test still running after two minutes is stuck: print where every task waits, so
    that the hang can be read from CI's output (pytest-timeout then ends it)."""

    async def watch() -> None:
        await asyncio.sleep(STUCK_AFTER_SECONDS)
        print(f"\n{request.node.nodeid} is stuck; its tasks:", file=sys.stderr)
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)

    watchdog = asyncio.create_task(watch())
    yield
    watchdog.cancel()
