"""Parsing `cortex-gateway accounts set` values: a number, 0 for unlimited, `default` to
clear the override (the operator's default applies again)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from app.accounts.service import NO_BUDGET
from providers import available_providers

DEFAULT = "default"


class BadValue(ValueError):
    pass


def count(option: str, raw: str) -> int | None:
    """An override for a quota: N >= 0 (0: unlimited), or None for `default`."""
    if raw == DEFAULT:
        return None
    if not raw.isdigit():
        raise BadValue(f"{option}: expected a whole number >= 0 (0: unlimited) or 'default'")
    return int(raw)


def rate(option: str, raw: str) -> float | None:
    if raw == DEFAULT:
        return None
    number = raw.removesuffix("/s")
    try:
        value = float(number)
    except ValueError:
        raise BadValue(
            f"{option}: expected requests per second, e.g. 50/s, 0 or 'default'"
        ) from None
    if value < 0 or value != value or value == float("inf"):
        raise BadValue(f"{option}: expected requests per second >= 0")
    return value


def budget(option: str, raw: str) -> tuple[Decimal | None, str | None]:
    """(budget_usd, budget_period) to store: `none` is explicitly no budget."""
    if raw == DEFAULT:
        return None, None
    if raw == "none":
        return None, NO_BUDGET
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BadValue(f"{option}: expected USD, e.g. 25.50, 'none' or 'default'") from None
    if not value.is_finite() or value < 0:
        raise BadValue(f"{option}: expected USD >= 0")
    return value, None


def period(option: str, raw: str) -> str | None:
    if raw == DEFAULT:
        return None
    if raw not in ("day", "month", "total"):
        raise BadValue(f"{option}: expected day, month, total or 'default'")
    return raw


def providers(option: str, raw: str) -> list[str] | None:
    if raw == DEFAULT:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    known = available_providers()
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise BadValue(
            f"{option}: unknown provider {unknown[0]!r}; known: {', '.join(known)}"
            if unknown
            else f"{option}: list at least one provider, or 'default'"
        )
    return list(dict.fromkeys(names))
