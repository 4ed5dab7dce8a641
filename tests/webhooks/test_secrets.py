"""A job's env values reach neither the gateway's own log output nor its webhooks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest

from app.application import create_app
from app.observability import logs
from tests.engine.conftest import busybox, submit, wait_for
from tests.factories import Keys
from tests.servers import lifespan_app
from tests.webhooks.conftest import Receiver, webhook_settings
from tests.webhooks.test_webhooks import subscribe

SECRET = "s3cr3t-value"


@pytest.fixture
def json_output() -> Iterator[io.StringIO]:
    """What the gateway writes with `log_format` json, at debug level (the most it says)."""
    settings_like = SimpleNamespace(log_format="json", log_level="debug")
    root = logging.getLogger()
    level = root.level
    logs.configure(settings_like)  # type: ignore[arg-type]
    handler = root.handlers[-1]  # the gateway's, added last
    assert isinstance(handler, logging.StreamHandler)
    assert isinstance(handler.formatter, logs.JsonFormatter)
    output = io.StringIO()
    handler.setStream(output)
    yield output
    root.removeHandler(handler)
    root.setLevel(level)


async def test_env_values_are_in_no_log_line_and_no_webhook(
    database_url: str, keys: Keys, receiver: Receiver, json_output: io.StringIO
) -> None:
    settings = webhook_settings(database_url, log_format="json", log_level="debug")
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            scopes = ["jobs:read", "jobs:write", "webhooks:read", "webhooks:write"]
            client.headers["Authorization"] = f"Bearer {await keys.create(scope=scopes)}"
            endpoint = await subscribe(client, receiver.url)
            job_id = await submit(client, busybox("echo done", env={"SECRET": SECRET}))
            job = await wait_for(client, job_id)
            await receiver.wait_for(4)

    assert job["status"] == "completed"
    bodies = receiver.verified(endpoint["secret"])
    assert {body["type"] for body in bodies} >= {"job.created", "job.completed"}
    assert all(body["data"]["id"] == job_id for body in bodies)
    for request in receiver.requests:
        assert SECRET not in request.body.decode()
    written = json_output.getvalue()
    assert job_id in written, "the gateway logged about the job"
    assert SECRET not in written
