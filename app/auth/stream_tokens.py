"""Short-lived tokens for EventSource URLs, which cannot carry an Authorization header.

A token names one job and its account, expires within minutes, grants reading that job's
streams and nothing else, and is signed with a key every gateway process on the database
shares, so a token issued by one process works on another. A token without a job grants the
account's status stream (`GET /jobs/events`) and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import repository

KEY_NAME = "stream-token-key"


@dataclass(frozen=True)
class StreamGrant:
    job_id: str | None  # None: the account's status stream, no job's
    account_id: str
    expires_at: float
    # The API key that asked for the token: its revocation ends the token too.
    key_id: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def load_key(connection: AsyncConnection) -> bytes:
    """The shared signing key, created by whichever process asks first."""
    return await repository.get_or_create_secret(connection, KEY_NAME, secrets.token_bytes(32))


def issue(
    key: bytes, *, job_id: str | None, account_id: str, key_id: str, ttl_seconds: float
) -> tuple[str, float]:
    expires_at = time.time() + ttl_seconds
    payload = _b64(
        json.dumps(
            {"j": job_id, "a": account_id, "k": key_id, "e": int(expires_at)}, separators=(",", ":")
        ).encode()
    )
    signature = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", float(int(expires_at))


def verify(key: bytes, token: str) -> StreamGrant | None:
    """The grant a token carries, or None when it is malformed, tampered with or expired."""
    payload, _, signature = token.partition(".")
    try:
        expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        claims = json.loads(_unb64(payload))
        job_id = None if claims["j"] is None else str(claims["j"])
        grant = StreamGrant(job_id, str(claims["a"]), float(claims["e"]), str(claims["k"]))
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    if grant.expires_at < time.time():
        return None
    return grant
