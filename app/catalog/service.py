"""Describes the providers a gateway knows: health asked of each adapter, capabilities and
pricing read from it."""

from __future__ import annotations

import asyncio

from app import admission, errors
from app.admission import ProviderSet, Verdict, workload_spec
from app.catalog import schemas
from app.jobs import service as jobs_service
from providers import registry
from providers.types import Health


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
        health=_health(await admission.ask_health(providers, adapter)),
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


def _health(health: Health) -> schemas.ProviderHealth:
    if not health.configured:
        return schemas.ProviderHealth(status="not_configured", reason=health.reason)
    if health.healthy:
        return schemas.ProviderHealth(status="healthy")
    return schemas.ProviderHealth(status="unhealthy", reason=health.reason)


async def quote(providers: ProviderSet, request: schemas.QuoteRequest) -> schemas.QuoteComparison:
    """The comparison `"provider": "auto"` places a job by, without submitting anything."""
    document = jobs_service.job_document(request, "job_quote")
    spec = workload_spec(document)
    if request.provider == registry.AUTO:
        names = admission.candidate_names(document["config"])
    else:
        names = [request.provider]
    candidates = await admission.compare(
        providers, spec, names, max_price=request.max_price_per_hour
    )
    chosen = next((c for c in candidates if c.verdict is Verdict.CHOSEN), None)
    return schemas.QuoteComparison(
        chosen=chosen.provider if chosen else None,
        usd_per_hour=chosen.quote.usd_per_hour if chosen and chosen.quote else None,
        candidates=[
            schemas.QuoteCandidate(
                provider=c.provider,
                verdict=c.verdict.value,
                reason=c.reason,
                usd_per_hour=c.quote.usd_per_hour if c.quote else None,
                native_amount=c.quote.native_amount if c.quote else None,
                native_unit=c.quote.native_unit if c.quote else None,
                refusals=[schemas.Refusal(field=r.field, message=r.message) for r in c.refusals],
            )
            for c in candidates
        ],
    )
