"""`cortex account`: what the key's account may do and how much of it it uses now."""

from __future__ import annotations

from typing import Annotated

import typer

from cortex_client.cli import output
from cortex_client.cli.app import context
from cortex_client.models import Account, Quota

app = typer.Typer(help="The key's account: limits, quotas in use and budget.")

JsonOption = Annotated[bool, typer.Option("--json", help="JSON, for scripts.")]


def _rate(account: Account) -> str:
    rate = account.rate_limit
    if rate.requests_per_second is None:
        return "unlimited"
    burst = "" if rate.burst is None else f", bursts of {rate.burst}"
    return f"{rate.requests_per_second:g} requests/s per key{burst}"


def _use(quota: Quota) -> str:
    limit = "unlimited" if quota.limit is None else str(quota.limit)
    # The size of a batch is checked per batch: nothing counts against it between them.
    return f"{limit} per batch" if quota.current is None else f"{quota.current} / {limit}"


def _budget(account: Account) -> str:
    budget = account.budget
    if budget is None:
        return "none"
    per = "in total" if budget.period == "total" else f"per {budget.period}"
    return f"{budget.usd:.2f} USD {per}: {budget.spent:.2f} spent, {budget.left:.2f} left"


def _show(account: Account) -> None:
    slots = account.max_engine_slots
    output.table(
        ("ACCOUNT", account.name),
        (
            ("id", account.id),
            ("rate limit", _rate(account)),
            *((quota.name, _use(quota)) for quota in account.quotas),
            ("engine slots", "fair share" if slots is None else f"at most {slots}"),
            ("budget", _budget(account)),
            ("providers", ", ".join(account.allowed_providers or ["all"])),
        ),
    )


@app.callback(invoke_without_command=True)
def show(ctx: typer.Context, json: JsonOption = False) -> None:
    """The rate limit, each quota as used / limit, engine slots, budget and allowed
    providers."""
    account = context(ctx).client.account.get()
    output.dump(account) if json else _show(account)
