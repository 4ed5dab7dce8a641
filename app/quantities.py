"""Resource quantities in the Kubernetes notation jobs use: `512Mi`, `2Gi`, `1G`, `1500000`."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|k|K|M|G|T|P)?$")

_MULTIPLIERS = {
    None: 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}


def parse_bytes(quantity: str) -> int:
    """`"512Mi"` -> 536870912. Raises ValueError on anything that is not a quantity."""
    match = _QUANTITY.match(quantity)
    if match is None:
        raise ValueError(
            f"{quantity!r} is not a quantity: use a number with an optional unit, "
            "such as 512Mi, 2Gi or 1G"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{quantity!r} is not a quantity") from exc
    return int(number * _MULTIPLIERS[match["suffix"]])


def format_bytes(count: int) -> str:
    for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if count >= size and count % size == 0:
            return f"{count // size}{suffix}"
    return str(count)
