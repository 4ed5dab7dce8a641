"""Akash Network through the Console API."""

from providers.akash.adapter import AkashProvider

__all__ = ["AkashProvider"]
