"""`cortex jobs ...`: submit (and wait), list, get, logs, events, cancel, metrics."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import typer

from cortex_client import Client, Job, calls
from cortex_client.cli import output, status_line
from cortex_client.cli.app import context

app = typer.Typer(help="Submit, list, follow and cancel jobs.", no_args_is_help=True)


class Defaults(TypedDict):
    cpu: int
    memory: str
    storage: str
    duration: int


# Without a template, a job needs every resource; these make a quick `submit` possible.
DEFAULTS: Defaults = {"cpu": 1000, "memory": "512Mi", "storage": "1Gi", "duration": 3600}


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{value!r} is not NAME=VALUE", param_hint="--env")
        pairs[name] = text
    return pairs


@app.command(context_settings={"allow_interspersed_args": False})
def submit(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None, typer.Argument(help="Command and arguments, after `--`.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option(help="local, akash, render, golem, or auto (the cheapest).")
    ] = None,
    image: Annotated[str | None, typer.Option(help="Container image, e.g. busybox:latest.")] = None,
    cpu: Annotated[int | None, typer.Option(help="Millicores (default 1000).")] = None,
    memory: Annotated[str | None, typer.Option(help="e.g. 64Mi (default 512Mi).")] = None,
    storage: Annotated[str | None, typer.Option(help="e.g. 1Gi (default 1Gi).")] = None,
    duration: Annotated[int | None, typer.Option(help="Seconds at most (default 3600).")] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable.")] = None,
    port: Annotated[list[int] | None, typer.Option(help="Expose this port, repeatable.")] = None,
    providers: Annotated[
        list[str] | None, typer.Option(help="With --provider auto: the candidates, repeatable.")
    ] = None,
    max_price_per_hour: Annotated[
        float | None, typer.Option(help="With --provider auto: the most to pay, USD.")
    ] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs the job needs.")] = None,
    gpu_model: Annotated[str | None, typer.Option(help="e.g. 'NVIDIA RTX 4090'.")] = None,
    template: Annotated[
        str | None, typer.Option(help="Start from this template; options override it.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the job and exit with its exit code.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
) -> None:
    """Submit a job and print its id (or, with --wait, its output and exit code).

    cortex jobs submit --provider local --image busybox:latest --wait -- sh -c 'echo hi'
    """
    client = context(ctx).client
    fields: dict[str, Any] = dict(
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
    if template is not None:
        overrides = calls.body(None, fields)
        job = client.templates.submit(template, overrides)
    else:
        for name, value in DEFAULTS.items():
            if fields[name] is None:
                fields[name] = value
        job = client.jobs.submit(**fields)
    if json:
        output.dump(job)
    elif wait:
        output.note(job.id)
    else:
        output.line(job.id)
    if wait:
        raise typer.Exit(_wait(client, job))


def gpu_request(count: int | None, model: str | None) -> dict[str, Any] | None:
    if count is None and model is None:
        return None
    return {"count": count or 1, **({"model": model} if model else {})}


def _wait(client: Client, job: Job) -> int:
    """Stream the job's logs under its status line; the exit code it deserves."""
    try:
        with status_line.shown(client, job) as show:
            for entry in client.jobs.follow_logs(job.id):
                output.log(entry)
            ended = client.jobs.get(job.id)
            show(ended)
        return _outcome(ended)
    except KeyboardInterrupt:
        output.note(f"Stopped following {job.id}; it goes on (`cortex jobs cancel {job.id}`).")
        return 130


def _outcome(job: Job) -> int:
    """0 for a completed job, its exit code for one that failed by exiting, 1 otherwise; the
    reason on stderr."""
    if job.status == "completed":
        return 0
    results = job.results
    if job.status == "failed":
        if results.reason == "exit_code":
            detail = f"exit code {results.exit_code}"
        else:
            detail = ": ".join(filter(None, (results.reason or "unknown reason", results.message)))
        output.note(f"{job.id} failed: {detail}")
        code = results.exit_code or 1
        return code if 0 < code < 256 else 1
    output.note(f"{job.id} was {job.status}")
    return 1


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(help="Only these states.")] = None,
    provider: Annotated[list[str] | None, typer.Option(help="Only these providers.")] = None,
    batch: Annotated[str | None, typer.Option(help="Only the jobs of this batch.")] = None,
    limit: Annotated[int, typer.Option(help="How many (1-100).")] = 20,
    all_: Annotated[
        bool, typer.Option("--all", help="Every matching job, page after page.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="JSON, for scripts.")] = False,
) -> None:
    """Jobs, newest first."""
    client = context(ctx).client
    if all_:
        jobs = list(
            client.jobs.iterate(status=status, provider=provider, batch_id=batch, page_size=100)
        )
    else:
        jobs = client.jobs.list(status=status, provider=provider, batch_id=batch, limit=limit).items
    if json:
        output.dump(jobs)
        return
    output.table(
        ("ID", "STATUS", "PROVIDER", "IMAGE", "CREATED", "COST (USD)"),
        (
            (
                j.id,
                j.status,
                j.provider,
                j.image,
                output.when(j.created_at),
                f"{j.cost.current:.4f}",
            )
            for j in jobs
        ),
    )


@app.command()
def get(
    ctx: typer.Context,
    job_id: str,
    json: Annotated[bool, typer.Option("--json", help="JSON, for scripts.")] = False,
) -> None:
    """A job: its specification, status, results and events."""
    job = context(ctx).client.jobs.get(job_id)
    if json:
        output.dump(job)
        return
    command = " ".join([*(job.config.command or []), *(job.config.args or [])]) or "-"
    results = job.results
    output.table(
        ("FIELD", "VALUE"),
        [
            ("id", job.id),
            ("status", job.status),
            ("provider", job.provider),
            ("image", job.image),
            ("command", command),
            ("resources", f"cpu {job.cpu}m, memory {job.memory}, storage {job.storage}"),
            ("duration", f"{job.duration} s"),
            ("created", output.when(job.created_at)),
            ("started", output.when(job.started_at)),
            ("ended", output.when(job.ended_at)),
            ("exit code", "-" if results.exit_code is None else results.exit_code),
            ("reason", results.reason or "-"),
            ("message", results.message or "-"),
            ("cost", f"{job.cost.current:.4f} of {job.cost.projected:.4f} {job.cost.currency}"),
            *((f"port {e.port}", e.url) for e in job.endpoints),
        ],
    )
    output.out.print()
    output.table(
        ("EVENT", "AT", "MESSAGE"),
        ((e.type, output.when(e.timestamp), e.message or "") for e in job.events),
    )


@app.command()
def logs(
    ctx: typer.Context,
    job_id: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Then print new lines until the job ends.")
    ] = False,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines.")] = None,
    since: Annotated[str | None, typer.Option(help="Lines at or after this ISO time.")] = None,
) -> None:
    """A job's log lines; with -f, live (resuming after a lost connection)."""
    client = context(ctx).client
    if not follow:
        for entry in client.jobs.logs(job_id, tail=tail, since=since):
            output.log(entry)
        return
    try:
        for entry in client.jobs.follow_logs(job_id, tail=tail, since=since):
            output.log(entry)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def events(
    ctx: typer.Context,
    job_id: Annotated[
        str | None, typer.Argument(help="A job; without one, every job's status changes.")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Live.")] = False,
) -> None:
    """A job's events, or the status changes of every job of the account."""
    client = context(ctx).client
    try:
        if job_id is not None:
            stream = client.jobs.follow_events(job_id) if follow else client.jobs.events(job_id)
            for e in stream:
                output.line(f"{output.when(e.timestamp)}  {e.type:<10}  {e.message or ''}".rstrip())
        else:
            changes = (
                client.jobs.follow_account_events() if follow else client.jobs.account_events()
            )
            for c in changes:
                output.line(f"{output.when(c.timestamp)}  {c.job_id}  {c.type:<10}  {c.provider}")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def cancel(ctx: typer.Context, job_id: str) -> None:
    """Cancel a job (a running one goes to `cancelling` until its provider confirms)."""
    job = context(ctx).client.jobs.cancel(job_id)
    output.line(f"{job.id}: {job.status}")


@app.command()
def metrics(
    ctx: typer.Context,
    job_id: str,
    period: Annotated[str, typer.Option(help="1h, 6h, 24h or 7d.")] = "1h",
    resolution: Annotated[str, typer.Option(help="1m, 5m or 1h.")] = "1m",
    json: Annotated[bool, typer.Option("--json", help="JSON, for scripts.")] = False,
) -> None:
    """A job's CPU, memory and network use over time."""
    data = context(ctx).client.jobs.metrics(job_id, period=period, resolution=resolution)
    if json:
        output.dump(data)
        return
    rows: dict[Any, list[Any]] = {}
    for column, series in enumerate((data.cpu, data.memory, data.network.rx, data.network.tx)):
        for point in series:
            rows.setdefault(point.timestamp, [None] * 4)[column] = point.value
    output.table(
        ("AT", "CPU (millicores)", "MEMORY (MiB)", "RX (bytes)", "TX (bytes)"),
        (
            (
                output.when(at),
                _number(cpu),
                None if memory is None else f"{memory / 2**20:.1f}",
                _number(rx),
                _number(tx),
            )
            for at, (cpu, memory, rx, tx) in sorted(rows.items())
        ),
    )


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.0f}"
