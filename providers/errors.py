"""Errors adapters raise. Foreign exceptions (httpx, JSON) are translated into these at the
adapter's boundary; nothing above providers/ catches a transport error."""

from __future__ import annotations

from providers.types import Refusal


class ProviderError(Exception):
    """Base of every provider error."""


class Unavailable(ProviderError):
    """The network cannot be reached or answered 5xx; the same call may work later."""


class NotConfigured(Unavailable):
    """The provider lacks credentials or settings to work at all."""


class Rejected(ProviderError):
    """The network will not run this spec; retrying will not help."""

    def __init__(self, message: str, refusals: list[Refusal] | None = None):
        super().__init__(message)
        self.refusals = refusals or []


class ImagePullFailed(ProviderError):
    """The image cannot be fetched; the message is the network's own."""


class HandleNotFound(ProviderError):
    """The network no longer knows the workload (removed, expired): the job is lost."""
