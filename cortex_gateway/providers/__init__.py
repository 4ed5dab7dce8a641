"""Provider networks a job can run on."""

from cortex_gateway.providers.registry import ENTRY_POINT_GROUP, available_providers

__all__ = ["ENTRY_POINT_GROUP", "available_providers"]
