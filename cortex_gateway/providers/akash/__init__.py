"""Akash Network through the Console API."""

from cortex_gateway.providers.akash.adapter import AkashProvider

__all__ = ["AkashProvider"]
