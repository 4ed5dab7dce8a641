"""Standard Webhooks signatures (https://www.standardwebhooks.com), so that receivers verify
with the `standardwebhooks` or `svix` libraries unchanged.

    webhook-id:        the delivery id (receivers deduplicate on it)
    webhook-timestamp: unix seconds
    webhook-signature: "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>", space-separated
                       when several secrets sign (during a rotation)

Two kinds of secret: a `whsec_` secret (what the gateway generates) is the base64 of its HMAC
key after the prefix, as Standard Webhooks defines it; any other secret a user chose (16 to 256
printable characters) is its own key, as UTF-8 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

PREFIX = "whsec_"
# A user's own secret: long enough to resist guessing, short enough to store and type.
PLAIN_MIN_LENGTH = 16
PLAIN_MAX_LENGTH = 256
# The HMAC key inside a `whsec_` secret, in bytes.
KEY_MIN_BYTES = 24
KEY_MAX_BYTES = 64


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_problem(secret: str) -> str | None:
    """Why `secret` cannot sign deliveries, or None when it can."""
    if secret.startswith(PREFIX):
        try:
            key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
        except ValueError:
            key = b""
        if not KEY_MIN_BYTES <= len(key) <= KEY_MAX_BYTES:
            return (
                f"a whsec_ secret is base64 of {KEY_MIN_BYTES} to {KEY_MAX_BYTES} bytes after the"
                " prefix (or give a secret of your own without the whsec_ prefix)"
            )
        return None
    if not PLAIN_MIN_LENGTH <= len(secret) <= PLAIN_MAX_LENGTH:
        return f"must be {PLAIN_MIN_LENGTH} to {PLAIN_MAX_LENGTH} characters long"
    if not secret.isprintable():
        return "must be printable characters (no control characters or line breaks)"
    return None


def key_of(secret: str) -> bytes:
    """The HMAC key: base64-decoded after a `whsec_` prefix, else the secret's UTF-8 bytes."""
    if secret.startswith(PREFIX):
        return base64.b64decode(secret.removeprefix(PREFIX))
    return secret.encode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    key = key_of(secret)
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: Iterable[str], message_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, message_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
    }
