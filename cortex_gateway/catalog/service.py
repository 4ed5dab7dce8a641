"""Describes the providers a gateway knows: health asked of each adapter, capabilities and
pricing read from it."""

from __future__ import annotations

import asyncio

from cortex_gateway import errors
from cortex_gateway.catalog import schemas
from cortex_gateway.engine.providers import ProviderSet
from cortex_gateway.providers import registry
from cortex_gateway.providers.base import Provider
from cortex_gateway.providers.types import Health

# A listing must not hang on one network that does not answer.
HEALTH_TIMEOUT_SECONDS = 5.0


async def list_providers(providers: ProviderSet) -> list[schemas.Provider]:
    names = registry.available_providers()
    return list(await asyncio.gather(*(_describe(providers, name) for name in names)))


async def get_provider(providers: ProviderSet, name: str) -> schemas.Provider:
    if name not in registry.available_providers():
        raise errors.ProviderNotFound(
            f"No provider named {name!r}; providers: {', '.join(registry.available_providers())}."
        )
    return await _describe(providers, name)


async def _describe(providers: ProviderSet, name: str) -> schemas.Provider:
    adapter = providers.get(name)
    if adapter is None:
        return schemas.Provider(
            name=name,
            health=schemas.ProviderHealth(
                status="not_configured", reason="This gateway has no adapter for it yet."
            ),
            capabilities=None,
            pricing=None,
        )
    caps = adapter.capabilities
    return schemas.Provider(
        name=name,
        health=_health(await _ask_health(adapter)),
        capabilities=schemas.ProviderCapabilities(
            ports=caps.exposed_ports,
            command_override=caps.command_override,
            volumes=caps.volumes,
            gpus=caps.gpus,
            min_duration=caps.min_duration_seconds,
            max_duration=caps.max_duration_seconds,
        ),
        pricing=schemas.ProviderPricing(description=caps.pricing or "Not described."),
    )


async def _ask_health(adapter: Provider) -> Health:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            return await adapter.health()
    except TimeoutError:
        return Health(False, f"no answer within {HEALTH_TIMEOUT_SECONDS:.0f} s")


def _health(health: Health) -> schemas.ProviderHealth:
    if not health.configured:
        return schemas.ProviderHealth(status="not_configured", reason=health.reason)
    if health.healthy:
        return schemas.ProviderHealth(status="healthy")
    return schemas.ProviderHealth(status="unhealthy", reason=health.reason)
