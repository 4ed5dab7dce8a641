"""Public identifiers: a type prefix and random hex (`job_3f2a9c1b7d4e6a80`)."""

from __future__ import annotations

import re
import secrets

_ID_PATTERN = re.compile(r"^[a-z]+_[0-9a-f]{12,32}$")


def new_id(prefix: str) -> str:
    # 64 random bits: collisions stay negligible well past a billion jobs.
    return f"{prefix}_{secrets.token_hex(8)}"


def looks_like(prefix: str, value: str) -> bool:
    return value.startswith(prefix + "_") and _ID_PATTERN.match(value) is not None
