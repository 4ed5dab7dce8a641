"""`"provider": "auto"`: which providers could run a job, at what price, and which is chosen.

The comparison asks every candidate adapter what it would say to the job: whether it can run
the spec (`check`, then `quote`), whether it is healthy, and its price in USD per hour. The
cheapest healthy one within the job's `maxPricePerHour` is chosen; ties go to the one listed
first. The API uses the same comparison to refuse a job nobody can run before storing it, and
`POST /providers/quote` answers it without submitting anything; the engine (engine/auto.py)
places the job by it and moves on to the next candidate when one fails the job before it
started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app import errors
from app.admission.providers import ProviderSet
from providers import registry
from providers.errors import ProviderError, Rejected
from providers.types import FailureReason, Quote, Refusal, WorkloadSpec

# A job a network failed for these reasons never started there: the next candidate may take it.
BEFORE_START_REASONS = frozenset(
    {FailureReason.NO_BIDS.value, FailureReason.NO_OFFERS.value, FailureReason.NOT_ASSIGNED.value}
)


class Verdict(StrEnum):
    CHOSEN = "chosen"
    ELIGIBLE = "eligible"  # could take it, but another is cheaper
    INCAPABLE = "incapable"  # cannot run this spec
    UNHEALTHY = "unhealthy"  # down, unreachable or not configured
    TOO_DEAR = "too_dear"  # over maxPricePerHour
    TRIED = "tried"  # failed this job before it started


@dataclass(frozen=True)
class Candidate:
    provider: str
    verdict: Verdict
    reason: str
    quote: Quote | None = None
    refusals: tuple[Refusal, ...] = ()

    def describe(self) -> str:
        """One line for the job's timeline."""
        price = f" at ${self.quote.usd_per_hour:.4f}/h" if self.quote is not None else ""
        action = "chosen" if self.verdict is Verdict.CHOSEN else "skipped"
        return f"{self.provider}{price}: {action}, {self.reason}"

    def event_data(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "usdPerHour": self.quote.usd_per_hour if self.quote is not None else None,
        }


def candidate_names(config: dict[str, Any]) -> list[str]:
    return list(config.get("providers") or registry.available_providers())


async def compare(
    providers: ProviderSet,
    spec: WorkloadSpec,
    names: Sequence[str],
    *,
    max_price: float | None = None,
    tried: dict[str, str] | None = None,
) -> list[Candidate]:
    """Every candidate with what it said, the chosen one (if any) first, then the others
    cheapest first, then those that cannot take the job."""
    tried = tried or {}
    asked = await asyncio.gather(
        *(_ask(providers, name, spec) for name in names if name not in tried)
    )
    ranked: list[Candidate] = []
    for candidate in asked:
        quote = candidate.quote
        if max_price is not None and quote is not None and quote.usd_per_hour > max_price:
            candidate = Candidate(
                candidate.provider,
                Verdict.TOO_DEAR,
                f"over maxPricePerHour (${max_price:g}/h)",
                quote,
            )
        ranked.append(candidate)
    order = {name: index for index, name in enumerate(names)}
    eligible = sorted(
        (c for c in ranked if c.verdict is Verdict.ELIGIBLE),
        key=lambda c: (c.quote.usd_per_hour if c.quote else 0.0, order[c.provider]),
    )
    others = [c for c in ranked if c.verdict is not Verdict.ELIGIBLE]
    if eligible:
        best, rest = eligible[0], eligible[1:]
        how = f"the cheapest of {len(eligible)}" if rest else "the only one able to take it"
        eligible = [Candidate(best.provider, Verdict.CHOSEN, how, best.quote)] + [
            Candidate(c.provider, c.verdict, f"dearer than {best.provider}", c.quote) for c in rest
        ]
    before = [Candidate(name, Verdict.TRIED, said) for name, said in tried.items()]
    return eligible + others + before


async def _ask(providers: ProviderSet, name: str, spec: WorkloadSpec) -> Candidate:
    try:
        adapter = providers.get(name)
    except registry.UnknownProvider:
        return Candidate(name, Verdict.INCAPABLE, "no such provider in this gateway")
    if adapter is None:
        return Candidate(name, Verdict.INCAPABLE, "this gateway has no adapter for it yet")
    refusals = tuple(adapter.check(spec))
    if refusals:
        return Candidate(name, Verdict.INCAPABLE, _refused(refusals), refusals=refusals)
    try:
        # One network that does not answer must not hold up the others.
        async with asyncio.timeout(providers.timeout):
            health = await adapter.health()
            if not health.healthy:
                return Candidate(name, Verdict.UNHEALTHY, f"unhealthy: {health.reason}")
            quote = await adapter.quote(spec)
    except TimeoutError:
        return Candidate(name, Verdict.UNHEALTHY, f"no answer within {providers.timeout:g} s")
    except Rejected as exc:
        refusals = tuple(exc.refusals)
        return Candidate(name, Verdict.INCAPABLE, _refused(refusals) or str(exc), refusals=refusals)
    except ProviderError as exc:
        return Candidate(name, Verdict.UNHEALTHY, f"unavailable: {exc}")
    return Candidate(name, Verdict.ELIGIBLE, "able to take it", quote)


def _refused(refusals: Sequence[Refusal]) -> str:
    return "cannot run it: " + "; ".join(f"{r.field}: {r.message}" for r in refusals)


def summary(candidates: Sequence[Candidate]) -> str:
    """What each provider said, for a job no provider would take."""
    return "; ".join(f"{c.provider}: {c.reason}" for c in candidates)


async def check_auto(providers: ProviderSet, spec: WorkloadSpec) -> list[Candidate]:
    """What POST /jobs checks of an auto job before storing it: 400 when no candidate can
    run the spec (or none within its price), 503 when those that could are all down."""
    config = spec.document.get("config") or {}
    names = candidate_names(config)
    candidates = await compare(providers, spec, names, max_price=config.get("maxPricePerHour"))
    if any(c.verdict is Verdict.CHOSEN for c in candidates):
        return candidates
    if all(c.verdict is Verdict.INCAPABLE for c in candidates):
        raise errors.ValidationError(
            "No provider can run this job.",
            [
                {
                    "field": refusal.field if refusal is not None else "provider",
                    "message": f"{c.provider}: {refusal.message if refusal else c.reason}",
                    "type": "provider_capability",
                }
                for c in candidates
                for refusal in (c.refusals or (None,))
            ],
        )
    if any(c.verdict is Verdict.TOO_DEAR for c in candidates):
        raise errors.ValidationError(
            "No provider can run this job within its maxPricePerHour.",
            [
                {"field": "maxPricePerHour", "message": c.describe(), "type": "price"}
                for c in candidates
                if c.verdict is not Verdict.INCAPABLE
            ],
        )
    raise errors.ProviderUnavailable(
        f"No provider that can run this job is available now: {summary(candidates)}"
    )
