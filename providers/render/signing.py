"""Request signing for Render's compute API (OTOY's Dispersed API).

Every request carries `X-API-Key` (the public key), `X-Time` (UTC milliseconds, within five
minutes of the server's clock), `X-Nonce` (32 hex characters, never used twice) and
`X-Signature`: the hex HMAC-SHA256, keyed with the secret key, of
`publicKey|timestamp|nonce|METHOD|path|query|sha256hex(body)`, where the query has no leading
`?` and the body is exactly the bytes sent (the SHA-256 of nothing when there is none).

Bodies are canonical JSON (keys sorted at every depth, compact separators, no ASCII escaping),
as the official SDK sends them, and query parameters are sorted and RFC 3986-encoded: the same
function builds what is signed and what is sent, so the two cannot differ.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_query(params: Mapping[str, str] | None) -> str:
    if not params:
        return ""
    return "&".join(
        f"{quote(key, safe='')}={quote(str(params[key]), safe='')}" for key in sorted(params)
    )


def string_to_sign(
    public_key: str, timestamp: str, nonce: str, method: str, path: str, query: str, body: bytes
) -> str:
    body_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    return "|".join((public_key, timestamp, nonce, method.upper(), path, query, body_hash))


def signature(secret_key: str, message: str) -> str:
    return hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def signed_headers(
    public_key: str,
    secret_key: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
    *,
    now_ms: int | None = None,
) -> dict[str, str]:
    """The four authentication headers of one request; call again for every attempt, since
    a nonce is good for a single request."""
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    nonce = new_nonce()
    message = string_to_sign(public_key, timestamp, nonce, method, path, query, body)
    return {
        "X-API-Key": public_key,
        "X-Time": timestamp,
        "X-Nonce": nonce,
        "X-Signature": signature(secret_key, message),
    }
