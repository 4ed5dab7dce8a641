"""Checking a webhook delivery on the receiving side: Standard Webhooks signatures
(https://www.standardwebhooks.com), as the gateway signs them.

    webhook-id:        the delivery id (receivers deduplicate on it)
    webhook-timestamp: unix seconds
    webhook-signature: "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>", space-separated
                       when several secrets sign (during a rotation)

The HMAC key of a `whsec_` secret is the base64 after the prefix; any other secret (one you
chose when registering the endpoint) signs with its own UTF-8 bytes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from cortex_client.errors import CortexError

TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"
PLAIN_MIN_LENGTH = 16


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
    key = _secret_key(secret)
    text = body.decode() if isinstance(body, bytes) else body
    expected = _sign(key, message_id, timestamp, text)
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise WebhookVerificationError("no signature matches the secret")
    event: dict[str, Any] = json.loads(text)
    return event


def _secret_key(secret: str) -> bytes:
    """The HMAC key: for a `whsec_` secret the base64 after the prefix (24 to 64 bytes), for
    a secret of your own its UTF-8 bytes (at least 16 characters, as the gateway requires)."""
    if not secret.startswith(SECRET_PREFIX):
        if len(secret) < PLAIN_MIN_LENGTH:
            raise WebhookVerificationError(
                f"a secret is at least {PLAIN_MIN_LENGTH} characters long"
            )
        return secret.encode()
    key = b""
    with contextlib.suppress(ValueError):  # not base64 (binascii.Error)
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    if not 24 <= len(key) <= 64:
        raise WebhookVerificationError("the whsec_ secret is not base64 of 24 to 64 bytes")
    return key


def _sign(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
