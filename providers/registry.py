"""Provider names -> adapter classes: the built-in networks and installed plugins.

Built-ins are "module:Class" strings imported on first use, so an adapter's dependencies load
only when it is used. Third-party adapters register under the `cortex_gateway.providers`
entry point group with the same kind of value.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from providers.base import Provider

ENTRY_POINT_GROUP = "cortex_gateway.providers"
# Not a provider: a job that asks for it is placed by the engine on the cheapest provider
# that can run it (engine/placement.py).
AUTO = "auto"

# Kept sorted; every entry must import (tests check both).
BUILTIN_PROVIDERS: dict[str, str] = {
    "akash": "providers.akash:AkashProvider",
    "golem": "providers.golem:GolemProvider",
    "local": "providers.local:LocalProvider",
    "render": "providers.render:RenderProvider",
}


class UnknownProvider(LookupError):
    pass


@cache
def _plugins() -> dict[str, str]:
    return {entry.name.lower(): entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}


@cache
def available_providers() -> tuple[str, ...]:
    """Every name a job may ask for, sorted."""
    return tuple(sorted(set(BUILTIN_PROVIDERS) | set(_plugins())))


def provider_class(name: str) -> type[Provider] | None:
    """The adapter class for `name`; None for a built-in network whose adapter has not
    landed yet (its jobs wait, pending, until it does)."""
    target = _plugins().get(name) or BUILTIN_PROVIDERS.get(name)
    if target is None:
        raise UnknownProvider(
            f"unknown provider {name!r}; registered providers: {', '.join(available_providers())}"
        )
    if not target:
        return None
    module_name, _, class_name = target.partition(":")
    cls: type[Provider] = getattr(import_module(module_name), class_name)
    return cls
