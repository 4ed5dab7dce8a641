"""Webhook endpoints through the client, and verify_webhook on deliveries the gateway really
sent to a receiver on a loopback port."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cortex_client import AsyncClient, WebhookVerificationError, errors, verify_webhook
from tests.servers import uvicorn_server


class Receiver:
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def handle(self, request: Request) -> Response:
        await self.received.put((dict(request.headers), await request.body()))
        return Response(status_code=204)

    async def next(self) -> tuple[dict[str, str], bytes]:
        async with asyncio.timeout(30):
            return await self.received.get()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver()
    async with uvicorn_server(
        Starlette(routes=[Route("/hook", found.handle, methods=["POST"])])
    ) as url:
        yield found, f"{url}/hook"


async def test_endpoints_deliveries_and_verified_signatures(
    gateway_url: str, api_key: str, receiver: tuple[Receiver, str]
) -> None:
    inbox, hook_url = receiver
    async with AsyncClient(url=gateway_url, api_key=api_key) as cortex:
        created = await cortex.webhooks.create(hook_url, ["job.completed"], description="ci")
        assert created.secret.startswith("whsec_") and created.active
        assert [e.id async for e in cortex.webhooks.iterate()] == [created.id]
        page = await cortex.webhooks.list(limit=1)
        assert (page.pagination.total, page.items[0].url) == (1, hook_url)
        updated = await cortex.webhooks.update(created.id, events=["*"])
        assert updated.events == ["*"] and updated.description == "ci"

        sent = await cortex.webhooks.test(created.id)
        headers, body = await inbox.next()
        event = verify_webhook(created.secret, headers, body)
        assert event["type"] == "webhook.test"
        assert headers["webhook-id"] == sent.id

        with pytest.raises(WebhookVerificationError):
            verify_webhook(created.secret, headers, body.replace(b"webhook", b"webhooK"))
        with pytest.raises(WebhookVerificationError):
            verify_webhook(created.secret, headers, body, now=time.time() + 3600)
        second = await cortex.webhooks.create(hook_url, ["job.failed"])
        other = second.secret
        # Page after page by number (this listing has no cursors), each endpoint once.
        paged = [e.id async for e in cortex.webhooks.iterate(page_size=1)]
        assert sorted(paged) == sorted([created.id, second.id])
        with pytest.raises(WebhookVerificationError):
            verify_webhook(other, headers, body)
        with pytest.raises(WebhookVerificationError):
            verify_webhook(created.secret, {}, body)

        deliveries = [d async for d in cortex.webhooks.iterate_deliveries(created.id)]
        assert [d.id for d in deliveries] == [sent.id]
        retried = await cortex.webhooks.retry(created.id, sent.id)
        assert retried.id == sent.id
        headers, body = await inbox.next()
        assert headers["webhook-id"] == sent.id and verify_webhook(created.secret, headers, body)

        rotated = await cortex.webhooks.rotate_secret(created.id)
        assert rotated.secret != created.secret
        await cortex.webhooks.test(created.id)
        headers, body = await inbox.next()
        # During the rotation's grace period both secrets sign.
        assert json.loads(body) == verify_webhook(rotated.secret, headers, body)
        assert verify_webhook(created.secret, headers, body)

        with pytest.raises(errors.DeliveryNotFound):
            await cortex.webhooks.retry(created.id, "msg_0000000000000000")
        await cortex.webhooks.delete(created.id)
        with pytest.raises(errors.WebhookNotFound):
            await cortex.webhooks.get(created.id)


def test_verify_webhook_accepts_what_the_standard_webhooks_library_signs() -> None:
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    from app.webhooks.signing import new_secret

    secret, body = new_secret(), '{"type": "job.completed", "data": {"id": "job_1"}}'
    now = datetime.now(UTC)
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(int(now.timestamp())),
        "Webhook-Signature": Webhook(secret).sign("msg_1", now, body),
    }
    assert verify_webhook(secret, headers, body.encode())["data"] == {"id": "job_1"}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new_secret(), headers, body)


def test_verify_webhook_accepts_a_plain_secret_signing_with_its_utf8_bytes() -> None:
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    secret, body = "your-webhook-secret", '{"type": "job.failed", "data": {"id": "job_2"}}'
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret.encode()).sign("msg_2", now, body),
    }
    assert verify_webhook(secret, headers, body)["data"] == {"id": "job_2"}
    with pytest.raises(WebhookVerificationError):
        verify_webhook("another-webhook-secret", headers, body)
    with pytest.raises(WebhookVerificationError, match="16"):
        verify_webhook("short", headers, body)
