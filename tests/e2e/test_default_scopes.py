"""A key created with the default scopes reaches the whole API the documentation presents,
webhooks included; keys holding exactly the former default set are widened by migration
0015, and no other key is."""

from __future__ import annotations

import asyncio
import os

import httpx
import sqlalchemy as sa

from app import database, migrate
from app.application import create_app
from app.settings import Settings
from tests.e2e.test_gateway_process import cli
from tests.factories import API, job_spec
from tests.servers import lifespan_app
from tests.test_migrations import scratch_url  # noqa: F401 (a fixture)


async def test_a_default_key_from_the_cli_uses_jobs_templates_and_webhooks(
    database_url: str,
) -> None:
    env = dict(os.environ, DATABASE_URL=database_url)
    made = await asyncio.to_thread(cli, env, "keys", "create", "--name", "partner")
    assert made.returncode == 0, made.stderr
    assert "webhooks:read webhooks:write" in made.stdout
    headers = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}

    settings = Settings(
        database_url=database_url, engine_enabled=False, webhook_allowed_networks="127.0.0.0/8"
    )
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", headers=headers
        ) as client:
            hook = {"url": "http://127.0.0.1:9/hook", "events": ["job.completed"]}
            registered = await client.post(f"{API}/webhooks", json=hook)
            assert registered.status_code == 201, registered.text
            assert (await client.get(f"{API}/webhooks")).status_code == 200
            endpoint = registered.json()["data"]["id"]
            assert (await client.get(f"{API}/webhooks/{endpoint}/deliveries")).status_code == 200
            assert (await client.post(f"{API}/jobs", json=job_spec())).status_code == 201
            assert (await client.get(f"{API}/jobs")).status_code == 200
            template = {"name": "web", "config": job_spec()}
            assert (await client.post(f"{API}/jobs/templates", json=template)).status_code == 201


FORMER_DEFAULT = ["jobs:read", "jobs:write", "templates:read", "templates:write"]
WIDENED = [*FORMER_DEFAULT, "webhooks:read", "webhooks:write"]


def test_migration_0015_widens_exactly_the_former_default_set(
    scratch_url: str,  # noqa: F811
) -> None:
    migrate.upgrade(scratch_url, "0012")
    held = {
        "key_former_default": FORMER_DEFAULT,
        "key_former_default_reordered": list(reversed(FORMER_DEFAULT)),
        "key_jobs_only": ["jobs:read", "jobs:write"],
        "key_reader": ["jobs:read", "templates:read"],
        "key_admin": ["admin"],
        "key_more": [*FORMER_DEFAULT, "webhooks:read"],
    }

    async def seed() -> None:
        engine = database.create_engine(scratch_url, pool_size=1)
        async with engine.begin() as connection:
            await connection.execute(sa.text("INSERT INTO accounts (id, name) VALUES ('a', 'a')"))
            for key_id, scopes in held.items():
                await connection.execute(
                    sa.text(
                        "INSERT INTO api_keys (id, account_id, name, secret_hash, prefix, scopes)"
                        " VALUES (:id, 'a', :id, :hash, 'cgw_x', :scopes)"
                    ),
                    {"id": key_id, "hash": key_id.encode(), "scopes": scopes},
                )
        await engine.dispose()

    async def scopes_now() -> dict[str, list[str]]:
        engine = database.create_engine(scratch_url, pool_size=1)
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT id, scopes FROM api_keys"))
            found = {row.id: list(row.scopes) for row in rows}
        await engine.dispose()
        return found

    asyncio.run(seed())
    migrate.upgrade(scratch_url, "0015")
    after = asyncio.run(scopes_now())

    assert after["key_former_default"] == WIDENED
    assert after["key_former_default_reordered"] == WIDENED
    for unchanged in ("key_jobs_only", "key_reader", "key_admin", "key_more"):
        assert after[unchanged] == held[unchanged]

    migrate.downgrade(scratch_url, "0012")
    assert asyncio.run(scopes_now())["key_former_default"] == FORMER_DEFAULT
