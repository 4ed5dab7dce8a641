"""Which provider names a job may ask for: the built-in networks plus installed plugins.

Third-party adapters register under the `cortex_gateway.providers` entry point group.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "cortex_gateway.providers"

BUILTIN_PROVIDERS = ("akash", "golem", "local", "render")


@cache
def available_providers() -> tuple[str, ...]:
    """Every registered provider name, sorted."""
    plugins = {entry.name.lower() for entry in entry_points(group=ENTRY_POINT_GROUP)}
    return tuple(sorted(set(BUILTIN_PROVIDERS) | plugins))
