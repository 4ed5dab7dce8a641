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
from providers.registry import AUTO
from providers.types import Health, Quote, WorkloadSpec


@dataclass(frozen=True)
class Admission:
    """A spec a provider will take. `provider` is where it goes: the one the job names, or,
    for `"provider": "auto"`, the candidate chosen now (the engine compares again when it
    places the job). `quote` and `candidates` are what the comparison found (auto only: a
    named provider is quoted by the engine at submission)."""

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
        raise errors.ProviderUnavailable(
            f"Provider {name!r} is not available in this gateway yet: no adapter is installed."
        )
    health = await ask_health(providers, adapter)
    if not health.healthy:
        state = "unavailable" if health.configured else "not configured"
        raise errors.ProviderUnavailable(f"Provider {name!r} is {state}: {health.reason}")
    refusals = adapter.check(spec)
    if refusals:
        raise errors.ValidationError(
            f"Provider {name!r} cannot run this job.",
            [
                {"field": r.field, "message": r.message, "type": "provider_capability"}
                for r in refusals
            ],
        )
    return Admission(spec, name)
