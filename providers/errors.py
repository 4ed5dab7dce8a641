"""Errors adapters raise. Foreign exceptions (httpx, JSON) are translated into these at the
adapter's boundary; nothing above providers/ catches a transport error.

    ProviderError
    ├── Unavailable          the same call may work later (the engine retries)
    │   └── NotConfigured    credentials or settings missing
    ├── Rejected             this spec will never run there (the job fails: rejected)
    ├── ImagePullFailed      the image cannot be fetched (the job fails: image_pull)
    ├── HandleNotFound       the workload is gone (the job fails: lost)
    └── ProviderApiError     the network's API answered an error status the adapter did not
                             expect; `definitive` says whether asking again can help

An adapter's public methods turn a ProviderApiError into one of the others (`translate`, or a
FAILED status from status(), see `failed_status`), so the engine never has to guess.
"""

from __future__ import annotations

from providers.types import FailureReason, Handle, Refusal, WorkloadState, WorkloadStatus


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


class ProviderApiError(ProviderError):
    """A provider network's API answered an error status. `message` is the API's own words;
    `request` names the call ("GET /v1/bids") when the client knows it."""

    def __init__(
        self, provider: str, status: int, message: str, *, request: str | None = None
    ) -> None:
        super().__init__(
            f"{provider}: {message} (HTTP {status}{f' to {request}' if request else ''})"
        )
        self.provider = provider
        self.status = status
        self.message = message
        self.request = request

    @property
    def definitive(self) -> bool:
        """A 4xx refusal (other than a timeout or rate limit): the same call will be refused
        again, so retrying cannot help."""
        return 400 <= self.status < 500 and self.status not in (408, 425, 429)

    def translate(self) -> Rejected | Unavailable:
        """For submit() and the like: a definitive refusal rejects the job, anything else
        is worth another try."""
        if self.definitive:
            return Rejected(f"{self.provider} refused {self._call}: {self.message}")
        return Unavailable(f"{self.provider}: {self._call} failed: {self.message}")

    def failed_status(self, handle: Handle | None = None) -> WorkloadStatus:
        """For status(), where only a FAILED answer ends a job: the refusal, as the reason."""
        return WorkloadStatus(
            WorkloadState.FAILED,
            reason=FailureReason.PROVIDER_ERROR,
            message=f"{self.provider} refused {self._call}: {self.message}",
            handle=handle,
        )

    @property
    def _call(self) -> str:
        return f"{self.request or 'a request'} (HTTP {self.status})"
