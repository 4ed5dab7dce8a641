"""The job specification options that `cortex jobs submit` and `cortex providers quote` share:
declared once here, so that the two commands take the same spec the same way."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import typer


class Defaults(TypedDict):
    cpu: int
    memory: str
    storage: str
    duration: int


# Without a template, a job needs every resource; these make a quick `submit` possible.
DEFAULTS: Defaults = {"cpu": 1000, "memory": "512Mi", "storage": "1Gi", "duration": 3600}

Command = Annotated[list[str] | None, typer.Argument(help="Command and arguments, after `--`.")]
Provider = Annotated[
    str | None, typer.Option(help="local, akash, render, golem, or auto (the cheapest).")
]
Image = Annotated[str | None, typer.Option(help="Container image, e.g. busybox:latest.")]
Cpu = Annotated[int | None, typer.Option(help="Millicores (default 1000).")]
Memory = Annotated[str | None, typer.Option(help="e.g. 64Mi (default 512Mi).")]
Storage = Annotated[str | None, typer.Option(help="e.g. 1Gi (default 1Gi).")]
Duration = Annotated[int | None, typer.Option(help="Seconds at most (default 3600).")]
Env = Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable.")]
Port = Annotated[list[int] | None, typer.Option(help="Expose this port, repeatable.")]
Providers = Annotated[
    list[str] | None, typer.Option(help="With --provider auto: the candidates, repeatable.")
]
MaxPricePerHour = Annotated[
    float | None, typer.Option(help="With --provider auto: the most to pay, USD.")
]
Gpus = Annotated[int | None, typer.Option(help="GPUs the job needs.")]
GpuModel = Annotated[str | None, typer.Option(help="e.g. 'NVIDIA RTX 4090'.")]


def fields(
    *,
    command: list[str] | None,
    provider: str | None,
    image: str | None,
    cpu: int | None,
    memory: str | None,
    storage: str | None,
    duration: int | None,
    env: list[str] | None,
    port: list[int] | None,
    providers: list[str] | None,
    max_price_per_hour: float | None,
    gpus: int | None,
    gpu_model: str | None,
) -> dict[str, Any]:
    """The options as the client's keyword fields; None where not given (a template's, or the
    gateway's, value applies)."""
    return dict(
        provider=provider,
        image=image,
        cpu=cpu,
        memory=memory,
        storage=storage,
        duration=duration,
        env=_pairs(env) if env else None,
        ports=[{"port": p, "expose": True} for p in port] if port else None,
        command=command or None,
        providers=providers or None,
        max_price_per_hour=max_price_per_hour,
        gpu=gpu_request(gpus, gpu_model),
    )


def with_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """`given`, with DEFAULTS for the resources it leaves out."""
    return {**given, **{name: value for name, value in DEFAULTS.items() if given[name] is None}}


def gpu_request(count: int | None, model: str | None) -> dict[str, Any] | None:
    if count is None and model is None:
        return None
    return {"count": count or 1, **({"model": model} if model else {})}


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{value!r} is not NAME=VALUE", param_hint="--env")
        pairs[name] = text
    return pairs
