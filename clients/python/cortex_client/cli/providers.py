"""`cortex providers`: which networks this gateway can use, their health, what they can run and
how they price."""

from __future__ import annotations

from typing import Annotated

import typer

from cortex_client.cli import jobs, output
from cortex_client.cli.app import context
from cortex_client.models import Provider

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


@app.command()
def quote(
    ctx: typer.Context,
    image: Annotated[str, typer.Option(help="Container image, e.g. nginx:alpine.")],
    provider: Annotated[str, typer.Option(help="auto compares every candidate.")] = "auto",
    providers: Annotated[
        list[str] | None, typer.Option(help="The candidates (default: all), repeatable.")
    ] = None,
    cpu: Annotated[int, typer.Option(help="Millicores.")] = jobs.DEFAULTS["cpu"],
    memory: Annotated[str, typer.Option()] = jobs.DEFAULTS["memory"],
    storage: Annotated[str, typer.Option()] = jobs.DEFAULTS["storage"],
    duration: Annotated[int, typer.Option(help="Seconds.")] = jobs.DEFAULTS["duration"],
    port: Annotated[list[int] | None, typer.Option(help="Expose this port, repeatable.")] = None,
    max_price_per_hour: Annotated[float | None, typer.Option(help="USD.")] = None,
    gpus: Annotated[int | None, typer.Option()] = None,
    gpu_model: Annotated[str | None, typer.Option()] = None,
    json: JsonOption = False,
) -> None:
    """Where a job would go and what each provider would charge, without submitting it."""
    comparison = context(ctx).client.providers.quote(
        provider=provider,
        providers=providers or None,
        image=image,
        cpu=cpu,
        memory=memory,
        storage=storage,
        duration=duration,
        ports=[{"port": p, "expose": True} for p in port] if port else None,
        max_price_per_hour=max_price_per_hour,
        gpu=jobs.gpu_request(gpus, gpu_model),
    )
    if json:
        output.dump(comparison)
        return
    output.table(
        ("PROVIDER", "VERDICT", "USD/HOUR", "WHY"),
        (
            (
                c.provider,
                c.verdict,
                "-" if c.usd_per_hour is None else f"{c.usd_per_hour:.4f}",
                c.reason,  # it already names each refusal
            )
            for c in comparison.candidates
        ),
    )
    if comparison.chosen is None:
        output.note("No provider can take this job now.")
