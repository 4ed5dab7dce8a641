"""The provider adapters one gateway process uses, built once from the settings."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.settings import Settings
from providers import registry
from providers.base import Provider

if TYPE_CHECKING:
    from app.observability.metrics import GatewayMetrics

logger = logging.getLogger(__name__)


class ProviderSet:
    def __init__(self, settings: Settings, *, metrics: GatewayMetrics | None = None):
        self._settings = settings
        # Seconds a health check or a quote may take before the provider counts as down.
        self.timeout = settings.provider_timeout
        self._adapters: dict[str, Provider] = {}
        # With metrics, every adapter call is counted and timed (one place for all of them).
        self._metrics = metrics

    def get(self, name: str) -> Provider | None:
        """The adapter for `name`, built on first use; None when no adapter exists yet."""
        adapter = self._adapters.get(name)
        if adapter is None:
            if name == registry.AUTO:
                return None  # not placed yet: engine/auto.py picks a provider
            cls = registry.provider_class(name)
            if cls is None:
                return None
            adapter = self._metered(cls(**self._settings.provider_options(name)))
            self._adapters[name] = adapter
        return adapter

    def add(self, adapter: Provider) -> None:
        """Use this adapter instance for its name (tests, embedding applications)."""
        self._adapters[adapter.name] = self._metered(adapter)

    def _metered(self, adapter: Provider) -> Provider:
        return adapter if self._metrics is None else self._metrics.meter(adapter)

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            try:
                await adapter.aclose()
            except Exception:
                logger.exception("closing provider %s failed", adapter.name)
        self._adapters.clear()
