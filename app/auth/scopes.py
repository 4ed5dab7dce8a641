"""What an API key may do."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_WRITE = "templates:write"
    # Every scope, present and future.
    ADMIN = "admin"


# What `keys create` grants without `--scope`: the whole API the documentation presents, all
# but administration (migration 0015 widened keys holding exactly the former default set).
DEFAULT_SCOPES = (
    Scope.JOBS_READ,
    Scope.JOBS_WRITE,
    Scope.TEMPLATES_READ,
    Scope.TEMPLATES_WRITE,
    Scope.WEBHOOKS_READ,
    Scope.WEBHOOKS_WRITE,
)


def parse_scopes(names: list[str]) -> list[Scope]:
    """Scope names -> Scope values, in order, without repeats; ValueError names the bad one."""
    known = {scope.value: scope for scope in Scope}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; valid scopes: {', '.join(sorted(known))}")
    return list(dict.fromkeys(known[name] for name in names))


def grants(held: list[str], needed: Scope) -> bool:
    return Scope.ADMIN in held or needed in held
