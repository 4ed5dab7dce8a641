"""Remembers verified API keys for a few seconds, so a busy client costs no key lookup.

Revocation stays immediate: revoking a key sends a notification that empties this cache in
every gateway process, and while a process cannot hear notifications it does not cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.auth.service import AuthContext

TTL_SECONDS = 10.0
MAX_ENTRIES = 10_000
# The payload every process listens for; sent in the transaction that revokes a key.
INVALIDATE = "keys"


class KeyCache:
    def __init__(self, usable: Callable[[], bool]) -> None:
        self._usable = usable
        self._entries: dict[bytes, tuple[AuthContext, float]] = {}
        # Counts the notifications that keys changed (and the listener's reconnects, which may
        # have missed some): while it stands still, no key can have been revoked.
        self.generation = 0

    def get(self, secret_hash: bytes) -> AuthContext | None:
        entry = self._entries.get(secret_hash)
        if entry is None or not self._usable():
            return None
        auth, expires = entry
        if expires < time.monotonic():
            del self._entries[secret_hash]
            return None
        return auth

    def put(self, secret_hash: bytes, auth: AuthContext) -> None:
        if not self._usable():
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[secret_hash] = (auth, time.monotonic() + TTL_SECONDS)

    def clear(self) -> None:
        self._entries.clear()
        self.generation += 1

    def vouches_since(self, generation: int) -> bool:
        """True when no key can have changed since `generation` was read: no notification came
        since, and the listener hears them (so none was missed)."""
        return self.generation == generation and self._usable()
