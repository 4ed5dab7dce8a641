"""Taking a job down on Golem: each step tolerates having been done already, or its provider
being gone, and anything else is worth trying again."""

from __future__ import annotations

from providers.errors import Unavailable
from providers.golem.yagna import ACTIVITY, MARKET, PAYMENT, Yagna, YagnaError


async def destroy_activity(yagna: Yagna, activity_id: str) -> None:
    try:
        await yagna.call("DELETE", f"{ACTIVITY}/activity/{activity_id}")
    except YagnaError as exc:
        if exc.status == 404 or exc.provider_unreachable:
            return  # gone already, or with its provider
        raise Unavailable(f"golem: destroying the activity failed: {exc.message}") from exc


async def end_agreement(yagna: Yagna, agreement: str) -> bool:
    """Terminate (or cancel, if not approved yet) the agreement. Returns whether it had
    been approved, so an invoice is due."""
    try:
        found = await yagna.call("GET", f"{MARKET}/agreements/{agreement}")
    except YagnaError as exc:
        if exc.status == 404:
            return False
        raise Unavailable(f"golem: reading the agreement failed: {exc.message}") from exc
    state = found.get("state")
    approved = bool(found.get("approvedDate")) or state == "Approved"
    action = {"Approved": "terminate", "Proposal": "cancel", "Pending": "cancel"}.get(state)
    if action is None:
        return approved
    try:
        await yagna.call(
            "POST",
            f"{MARKET}/agreements/{agreement}/{action}",
            json_body={"message": "Finished", "extra": {"source": "cortex-gateway"}},
        )
    except YagnaError as exc:
        if exc.status == 410:  # "from Terminated to Terminated": already done
            return approved
        if exc.provider_unreachable:
            # The provider is gone: nothing will invoice; the agreement lapses at validTo.
            return False
        raise Unavailable(f"golem: ending the agreement failed: {exc.message}") from exc
    return approved


async def unsubscribe(yagna: Yagna, demand_id: str) -> None:
    try:
        await yagna.call("DELETE", f"{MARKET}/demands/{demand_id}")
    except YagnaError as exc:
        if exc.status not in (404, 410):
            raise Unavailable(f"golem: unsubscribing failed: {exc.message}") from exc


async def release_allocation(yagna: Yagna, allocation_id: str) -> None:
    try:
        await yagna.call("DELETE", f"{PAYMENT}/allocations/{allocation_id}")
    except YagnaError as exc:
        if exc.status not in (404, 410):
            raise Unavailable(f"golem: releasing the allocation failed: {exc.message}") from exc
