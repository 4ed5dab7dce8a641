"""`cortex providers`: which networks this gateway can use, their health, what they can run and
how they price."""

from __future__ import annotations

from typing import Annotated

import typer

from cortex_client.cli import output, spec
from cortex_client.cli.app import context
from cortex_client.models import Provider, QuoteCandidate

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


@app.command(context_settings={"allow_interspersed_args": False})
def quote(
    ctx: typer.Context,
    command: spec.Command = None,
    provider: Annotated[
        str, typer.Option(help="auto (the default) compares every candidate; a name, one.")
    ] = "auto",
    image: spec.Image = None,
    cpu: spec.Cpu = None,
    memory: spec.Memory = None,
    storage: spec.Storage = None,
    duration: spec.Duration = None,
    env: spec.Env = None,
    port: spec.Port = None,
    providers: spec.Providers = None,
    max_price_per_hour: spec.MaxPricePerHour = None,
    gpus: spec.Gpus = None,
    gpu_model: spec.GpuModel = None,
    json: JsonOption = False,
) -> None:
    """What each provider would charge for a job, and where `auto` would place it, without
    submitting it: the options of `cortex jobs submit` (a template aside).

    cortex providers quote --image nginx:alpine --cpu 2000 --memory 4Gi --duration 7200
    """
    fields = spec.with_defaults(
        spec.fields(
            command=command,
            provider=provider,
            image=image,
            cpu=cpu,
            memory=memory,
            storage=storage,
            duration=duration,
            env=env,
            port=port,
            providers=providers,
            max_price_per_hour=max_price_per_hour,
            gpus=gpus,
            gpu_model=gpu_model,
        )
    )
    comparison = context(ctx).client.providers.quote(**fields)
    if json:
        output.dump(comparison)
        return
    hours = fields["duration"] / 3600
    output.table(
        ("PROVIDER", "VERDICT", "USD/HOUR", f"USD FOR {fields['duration']} S", "NATIVE", "WHY"),
        (
            (
                c.provider,
                c.verdict,
                "-" if c.usd_per_hour is None else f"{c.usd_per_hour:.4f}",
                "-" if c.usd_per_hour is None else f"{c.usd_per_hour * hours:.4f}",
                _native(c),
                c.reason,  # it already names each refusal
            )
            for c in comparison.candidates
        ),
    )
    if comparison.chosen is None:
        output.note("No provider can take this job now.")


def _native(candidate: QuoteCandidate) -> str:
    if candidate.native_amount is None:
        return "-"
    return f"{candidate.native_amount:g} {candidate.native_unit or ''}".rstrip()
