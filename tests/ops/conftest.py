"""Databases of a test's own, for readiness checks that break them on purpose."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app import database, migrate
from app.application import create_app
from tests.factories import Keys
from tests.servers import lifespan_app
from tests.webhooks.conftest import webhook_settings

SCOPES = ["jobs:read", "jobs:write", "webhooks:read", "webhooks:write"]


async def admin(server_url: str, statement: str, **parameters: object) -> None:
    engine = database.create_engine(server_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(sa.text(statement), parameters)
    finally:
        await engine.dispose()


ScratchDatabase = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
def scratch_database(postgres_server_url: str) -> ScratchDatabase:
    """`async with scratch_database("head") as url`: a new database migrated to that
    revision, dropped afterwards."""

    @asynccontextmanager
    async def create(revision: str = "head") -> AsyncIterator[str]:
        name = f"cortex_ops_{secrets.token_hex(4)}"
        await admin(postgres_server_url, f'CREATE DATABASE "{name}"')
        url = make_url(postgres_server_url).set(database=name)
        rendered = url.render_as_string(hide_password=False)
        try:
            await asyncio.to_thread(migrate.upgrade, rendered, revision)
            yield rendered
        finally:
            await admin(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)')

    return create


@pytest.fixture
async def gateway(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose engine runs jobs on the real container runtime, and sends webhooks."""
    async with lifespan_app(create_app(webhook_settings(database_url))) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create(scope=SCOPES)}"
            yield client
