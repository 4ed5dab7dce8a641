"""`cortex jobs ...`: submit (and wait), list, get, logs, events, cancel, output, metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cortex_client import Client, Job, calls
from cortex_client.cli import output, spec, status_line
from cortex_client.cli.app import context

app = typer.Typer(help="Submit, list, follow and cancel jobs.", no_args_is_help=True)


@app.command(context_settings={"allow_interspersed_args": False})
def submit(
    ctx: typer.Context,
    command: spec.Command = None,
    provider: spec.Provider = None,
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
    fields = spec.fields(
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
    if template is not None:
        job = client.templates.submit(template, calls.body(None, fields))
    else:
        job = client.jobs.submit(**spec.with_defaults(fields))
    if json:
        output.dump(job)
    elif wait:
        output.note(job.id)
    else:
        output.line(job.id)
    if wait:
        raise typer.Exit(_wait(client, job))


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


@app.command("output")
def output_files(
    ctx: typer.Context,
    job_id: str,
    out: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Where to write (default: here).")
    ] = Path("."),
) -> None:
    """Download what a job left in /cortex/output/: one file as itself, several extracted."""
    for path in context(ctx).client.jobs.output(job_id, out):
        output.line(str(path))


@app.command()
def metrics(
    ctx: typer.Context,
    job_id: str,
    period: Annotated[str, typer.Option(help="1h, 6h, 24h or 7d.")] = "1h",
    resolution: Annotated[str, typer.Option(help="1m, 5m or 1h.")] = "1m",
    table: Annotated[bool, typer.Option("--table", help="Every bucket, as a table.")] = False,
    json: Annotated[bool, typer.Option("--json", help="JSON, for scripts.")] = False,
) -> None:
    """A job's CPU, memory and network use over time: a sparkline each (or --table)."""
    data = context(ctx).client.jobs.metrics(job_id, period=period, resolution=resolution)
    if json:
        output.dump(data)
        return
    rows: dict[Any, list[Any]] = {}
    for column, series in enumerate((data.cpu, data.memory, data.network.rx, data.network.tx)):
        for point in series:
            rows.setdefault(point.timestamp, [None] * 4)[column] = point.value
    if not rows:
        output.note(f"{job_id}: no samples in the last {period}")
        return
    if not table:
        moments = sorted(rows)
        output.line(
            f"{job_id}: {len(moments)} bucket{'' if len(moments) == 1 else 's'} of {resolution}, "
            f"{output.when(moments[0])} to {output.when(moments[-1])}"
        )
        columns = [[rows[at][column] for at in moments] for column in range(4)]
        output.table(
            ("", "", "AVERAGE", "MOST", "TOTAL"),
            [
                _spark("cpu", columns[0], lambda v: f"{v:.0f} m"),
                _spark("memory", columns[1], lambda v: f"{v / 2**20:.1f} MiB"),
                _spark("rx", columns[2], output.size, total=True),
                _spark("tx", columns[3], output.size, total=True),
            ],
        )
        return
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


def _spark(
    name: str, values: list[float | None], shown: Any, *, total: bool = False
) -> tuple[str, ...]:
    found = [v for v in values if v is not None]
    if not found:
        return (name, "-", "-", "-", "-")
    return (
        name,
        output.sparkline(values),
        shown(sum(found) / len(found)),
        shown(max(found)),
        shown(sum(found)) if total else "",
    )


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.0f}"
