"""Signed, expiring links to a job's output, that work without an API key (for a partner
server or a browser): `/api/plugin-core/jobs/{id}/output?expires=<unix time>&signature=...`.

The signature is an HMAC-SHA256 over the job id and the expiry, with a key every gateway
process on the database shares (kept in `gateway_secrets`, so links survive restarts and work
on every replica). Anyone holding a link can download that one job's output until it expires;
each read of the job issues a fresh one.

The same key signs the upload links a network that pushes outputs is given
(app/outputs/uploads.py), over a different text: neither kind of link works as the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import repository as auth_repository

KEY_NAME = "output-link-key"
# What a signature allows: downloading a job's output, or uploading it once.
DOWNLOAD, UPLOAD = "output", "output-upload"


async def load_key(connection: AsyncConnection) -> bytes:
    """The shared signing key, created by whichever process asks first."""
    return await auth_repository.get_or_create_secret(connection, KEY_NAME, secrets.token_bytes(32))


def _signature(key: bytes, job_id: str, expires: int, purpose: str) -> str:
    mac = hmac.new(key, f"{purpose}:{job_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def signed_query(
    key: bytes,
    job_id: str,
    ttl_seconds: float,
    now: float | None = None,
    *,
    purpose: str = DOWNLOAD,
) -> str:
    expires = int((time.time() if now is None else now) + ttl_seconds)
    return urlencode({"expires": expires, "signature": _signature(key, job_id, expires, purpose)})


def verify(
    key: bytes,
    job_id: str,
    expires: str | None,
    signature: str | None,
    *,
    purpose: str = DOWNLOAD,
) -> bool:
    """Whether the link's signature is this job's, for `purpose`, and it has not expired."""
    if expires is None or signature is None or not expires.isdigit() or len(expires) > 12:
        return False
    # As bytes: compare_digest refuses (TypeError) a str that is not ASCII.
    expected = _signature(key, job_id, int(expires), purpose).encode()
    if not hmac.compare_digest(expected, signature.encode()):
        return False
    return int(expires) >= time.time()


def output_url_for(
    job_id: str,
    *,
    collected: bool,
    declared: str | None,
    base_url: str,
    key: bytes,
    ttl_seconds: float,
) -> str | None:
    """The job's `results.outputUrl`: a signed link to what the gateway collected; else the
    URL the workload declared (`::cortex {"outputUrl": ...}`, jobs.output_url); else None."""
    if collected:
        query = signed_query(key, job_id, ttl_seconds)
        return f"{base_url.rstrip('/')}/jobs/{job_id}/output?{query}"
    return declared
