"""Admission: can this spec run, where, and at what price.

Asked of the providers before any transaction opens (a slow network must not hold a row lock
or a pooled connection), and each answer is bounded by the provider set's timeout: a provider
that does not answer in time counts as unavailable, so a submission fails with
PROVIDER_UNAVAILABLE instead of hanging. Jobs, batches, templates, the providers API and the
engine all ask here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app import errors
from app.admission import placement
from app.admission.placement import Candidate, Verdict
from app.admission.providers import ProviderSet
from providers.base import Provider
from providers.errors import ProviderError
from providers.registry import AUTO
from providers.types import Health, Quote, WorkloadSpec


@dataclass(frozen=True)
class Admission:
    """A spec a provider will take. `provider` is where it goes: the one the job names, or,
    for `"provider": "auto"`, the candidate chosen now (the engine compares again when it
    places the job). `quote` is the price the job is created with (cost.projected): the
    chosen candidate's, or the named provider's (None when it gave none in time; the engine
    quotes again when it submits the job). `candidates` are what an auto comparison found."""

    spec: WorkloadSpec
    provider: str
    quote: Quote | None = None
    candidates: tuple[Candidate, ...] = ()

    @property
    def job_id(self) -> str:
        return self.spec.job_id


async def ask_health(providers: ProviderSet, adapter: Provider) -> Health:
    """The adapter's health, or unhealthy when it does not answer within the timeout."""
    try:
        async with asyncio.timeout(providers.timeout):
            return await adapter.health()
    except TimeoutError:
        return Health(False, f"no answer within {providers.timeout:g} s")


async def admit(providers: ProviderSet, spec: WorkloadSpec) -> Admission:
    """The admission of `spec`, or the refusal: errors.ProviderUnavailable (503) when its
    provider is missing, down or silent, errors.ValidationError (400) naming each field no
    provider can honour."""
    name = spec.document["provider"]
    if name == AUTO:
        candidates = await placement.check_auto(providers, spec)
        chosen = candidates[0]  # check_auto returns only when one was chosen, listed first
        assert chosen.verdict is Verdict.CHOSEN
        return Admission(spec, chosen.provider, chosen.quote, tuple(candidates))
    adapter = providers.get(name)
    if adapter is None:
        raise _unavailable(name, "not available in this gateway yet: no adapter is installed")
    # What the provider can run is known without asking it: a spec it can never run is a
    # 400 whatever its health (a template is stored on this alone).
    refusals = adapter.check(spec)
    if refusals:
        raise errors.ValidationError(
            f"Provider {name!r} cannot run this job.",
            [
                {"field": r.field, "message": r.message, "type": "provider_capability"}
                for r in refusals
            ],
        )
    health = await ask_health(providers, adapter)
    if not health.healthy:
        state = "unavailable" if health.configured else "not configured"
        raise _unavailable(name, f"{state}: {health.reason}")
    return Admission(spec, name, await _ask_quote(providers, adapter, spec))


def _unavailable(name: str, why: str) -> errors.ProviderUnavailable:
    """503 naming the `provider` field (a batch names it jobs[i].provider)."""
    return errors.ProviderUnavailable(
        f"Provider {name!r} is {why}",
        [{"field": "provider", "message": f"{name} is {why}", "type": "provider_unavailable"}],
    )


async def _ask_quote(providers: ProviderSet, adapter: Provider, spec: WorkloadSpec) -> Quote | None:
    """The named provider's price for `spec`, or None when it gives none within the timeout
    (the job is still admitted: its projection waits for the engine's quote)."""
    try:
        async with asyncio.timeout(providers.timeout):
            return await adapter.quote(spec)
    except (TimeoutError, ProviderError):
        return None
