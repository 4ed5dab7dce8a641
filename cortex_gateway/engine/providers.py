"""The provider adapters one gateway process uses, built once from the settings."""

from __future__ import annotations

import logging

from cortex_gateway.providers import registry
from cortex_gateway.providers.base import Provider
from cortex_gateway.settings import Settings

logger = logging.getLogger(__name__)


class ProviderSet:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._adapters: dict[str, Provider] = {}

    def get(self, name: str) -> Provider | None:
        """The adapter for `name`, built on first use; None when no adapter exists yet."""
        adapter = self._adapters.get(name)
        if adapter is None:
            cls = registry.provider_class(name)
            if cls is None:
                return None
            adapter = cls(**self._settings.provider_options(name))
            self._adapters[name] = adapter
        return adapter

    def add(self, adapter: Provider) -> None:
        """Use this adapter instance for its name (tests, embedding applications)."""
        self._adapters[adapter.name] = adapter

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            try:
                await adapter.aclose()
            except Exception:
                logger.exception("closing provider %s failed", adapter.name)
        self._adapters.clear()
