"""Checking a webhook delivery on the receiving side, with the gateway's own signing code."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from app.webhooks import signing
from cortex_client.errors import CortexError

TOLERANCE_SECONDS = 300


class WebhookVerificationError(CortexError):
    """The delivery is not signed by the secret, or is too old or too new to accept."""


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """The delivery's event (`{"type", "timestamp", "data"}`) once its Standard Webhooks
    signature matches `secret` and its timestamp is within `tolerance` seconds of now;
    raises `WebhookVerificationError` otherwise. `headers` as received (any letter case),
    `body` exactly as received (not re-serialized)."""
    lower = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
        signatures = lower["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise WebhookVerificationError("missing or malformed webhook-* headers") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("the delivery's timestamp is outside the tolerance")
    if not signing.is_valid_secret(secret):
        raise WebhookVerificationError("the secret is not a whsec_ secret")
    text = body.decode() if isinstance(body, bytes) else body
    expected = signing.sign(secret, message_id, timestamp, text)
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise WebhookVerificationError("no signature matches the secret")
    event: dict[str, Any] = json.loads(text)
    return event
