"""Webhook secrets of both kinds: the documented registration with a secret of the user's
own, verified by a receiver that writes out Standard Webhooks itself, and the limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import API
from tests.webhooks.conftest import Received, Receiver

# The registration exactly as shared/reference/jobs-api.md shows it (the URL aside).
DOCUMENTED_SECRET = "your-webhook-secret"
DOCUMENTED_EVENTS = ["job.created", "job.started", "job.completed", "job.failed"]


def standard_webhooks_verify(key: bytes, request: Received) -> dict[str, Any]:
    """What a receiver does, from the Standard Webhooks specification alone: HMAC-SHA256 over
    `{webhook-id}.{webhook-timestamp}.{body}`, base64, compared with each `v1,` signature."""
    message_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) < 300
    signed = f"{message_id}.{timestamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [part.removeprefix("v1,") for part in request.headers["webhook-signature"].split()]
    assert any(hmac.compare_digest(expected, signature) for signature in given), "forged"
    return request.json  # type: ignore[no-any-return]


async def test_the_documented_registration_signs_with_the_secrets_utf8_bytes(
    gateway: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = {"url": receiver.url, "events": DOCUMENTED_EVENTS, "secret": DOCUMENTED_SECRET}
    created = await gateway.post(f"{API}/webhooks", json=body)
    assert created.status_code == 201, created.text
    endpoint = created.json()["data"]
    assert endpoint["secret"] == DOCUMENTED_SECRET
    assert endpoint["events"] == DOCUMENTED_EVENTS

    fired = await gateway.post(f"{API}/webhooks/{endpoint['id']}/test")
    assert fired.status_code == 202
    await receiver.wait_for(1)

    [request] = receiver.requests
    event = standard_webhooks_verify(DOCUMENTED_SECRET.encode("utf-8"), request)
    assert event["type"] == "webhook.test"
    assert event["data"]["endpointId"] == endpoint["id"]
    with pytest.raises(AssertionError, match="forged"):
        standard_webhooks_verify(b"another-webhook-secret", request)


async def test_a_generated_secret_is_whsec_shown_once_and_signs_with_its_decoded_key(
    gateway: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await gateway.post(f"{API}/webhooks", json={"url": receiver.url, "events": ["*"]})
    endpoint = created.json()["data"]
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    assert "secret" not in (await gateway.get(f"{API}/webhooks/{endpoint['id']}")).json()["data"]
    assert "secret" not in (await gateway.get(f"{API}/webhooks")).json()["data"][0]

    await gateway.post(f"{API}/webhooks/{endpoint['id']}/test")
    await receiver.wait_for(1)

    key = base64.b64decode(secret.removeprefix("whsec_"))
    assert standard_webhooks_verify(key, receiver.requests[0])["type"] == "webhook.test"


async def test_a_rotation_to_a_plain_secret_signs_with_it(
    gateway: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await gateway.post(f"{API}/webhooks", json={"url": receiver.url, "events": ["*"]})
    endpoint_id = created.json()["data"]["id"]
    rotated = await gateway.post(
        f"{API}/webhooks/{endpoint_id}/rotate-secret", json={"secret": "a-new-secret-of-mine"}
    )
    assert rotated.status_code == 200 and rotated.json()["data"]["secret"] == "a-new-secret-of-mine"
    await gateway.post(f"{API}/webhooks/{endpoint_id}/test")
    await receiver.wait_for(1)
    standard_webhooks_verify(b"a-new-secret-of-mine", receiver.requests[0])


@pytest.mark.parametrize("secret", ["s" * 16, "é" * 256, "whsec_" + "A" * 32, "with spaces ok 123"])
async def test_secrets_within_the_limits_are_accepted(
    gateway: httpx.AsyncClient, receiver: Receiver, secret: str
) -> None:
    body = {"url": receiver.url, "events": ["*"], "secret": secret}
    response = await gateway.post(f"{API}/webhooks", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["secret"] == secret


@pytest.mark.parametrize(
    "secret",
    [
        "s" * 15,  # shorter than 16 characters
        "s" * 257,  # longer than 256
        "whsec_not base64!!",  # the whsec_ prefix promises base64
        "whsec_" + "A" * 16,  # base64 of 12 bytes: under the 24 a whsec_ key needs
        "line\nbreak-in-the-secret",  # control characters
    ],
)
async def test_secrets_outside_the_limits_are_400_naming_the_field(
    gateway: httpx.AsyncClient, receiver: Receiver, secret: str
) -> None:
    body = {"url": receiver.url, "events": ["*"], "secret": secret}
    response = await gateway.post(f"{API}/webhooks", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [d["field"] for d in error["details"]] == ["secret"]


def documented_verify() -> Any:
    """The receiver's `verify` from docs/api.md, run as a reader would paste it."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    section = text.split("### Verifying a delivery", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    return namespace["verify"]


@pytest.mark.parametrize("secret", [DOCUMENTED_SECRET, None])
async def test_the_documented_snippet_verifies_both_kinds(
    gateway: httpx.AsyncClient, receiver: Receiver, secret: str | None
) -> None:
    body: dict[str, Any] = {"url": receiver.url, "events": ["*"]}
    if secret is not None:
        body["secret"] = secret
    endpoint = (await gateway.post(f"{API}/webhooks", json=body)).json()["data"]
    await gateway.post(f"{API}/webhooks/{endpoint['id']}/test")
    await receiver.wait_for(1)
    verify = documented_verify()

    [request] = receiver.requests
    assert verify(endpoint["secret"], request.headers, request.body)["type"] == "webhook.test"
    with pytest.raises(ValueError, match="bad signature"):
        verify("someone-elses-secret", request.headers, request.body)
