"""API key secrets: generated here, shown once, stored only as a hash.

The key carries 240 random bits, so a plain SHA-256 is a safe and fast lookup hash (a slow
password hash guards low-entropy secrets, which these are not).
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "cgw_"
_DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 8


def generate() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


def hash_secret(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def display_prefix(key: str) -> str:
    """The first characters of a key, safe to show in listings: `cgw_Xy12AbCd`."""
    return key[:_DISPLAY_PREFIX_LENGTH]


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 128 and value.isascii()
