"""`cortex providers`: which networks this gateway can use, their health, what they can run and
how they price."""

from __future__ import annotations

from typing import Annotated

import typer

from cortex_gateway.catalog.schemas import Provider
from cortex_gateway.user_cli import output
from cortex_gateway.user_cli.app import context

app = typer.Typer(help="Providers: health, capabilities and pricing.")

JsonOption = Annotated[bool, typer.Option("--json", help="JSON, for scripts.")]


def _capabilities(provider: Provider) -> str:
    found = provider.capabilities
    if found is None:
        return "-"
    can = [name for name in ("ports", "volumes", "gpus") if getattr(found, name)]
    if found.command_override:
        can.append("command")
    longest = "any" if found.max_duration is None else f"{found.max_duration} s"
    return f"{', '.join(can) or 'none'}; duration {found.min_duration} s to {longest}"


def _show(providers: list[Provider]) -> None:
    output.table(
        ("NAME", "HEALTH", "CAN RUN", "PRICING"),
        (
            (
                p.name,
                p.health.status + (f" ({p.health.reason})" if p.health.reason else ""),
                _capabilities(p),
                p.pricing.description if p.pricing else "-",
            )
            for p in providers
        ),
    )


@app.callback(invoke_without_command=True)
def list_providers(ctx: typer.Context, json: JsonOption = False) -> None:
    """Every provider (without a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    providers = context(ctx).client.providers.list()
    output.dump(providers) if json else _show(providers)


@app.command()
def get(ctx: typer.Context, name: str, json: JsonOption = False) -> None:
    """One provider."""
    provider = context(ctx).client.providers.get(name)
    output.dump(provider) if json else _show([provider])
