"""`cortex batch ...`: many jobs at once, at most N running, with a progress bar."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cortex_client import Batch, BatchSummary, Client
from cortex_client.cli import output
from cortex_client.cli.app import context
from cortex_client.cli.files import read_json

app = typer.Typer(help="Batches of jobs.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON, for scripts.")]
FINISHED = ("completed", "failed", "cancelled")
POLL_SECONDS = 0.5


def _jobs_of(document: Any) -> tuple[list[Any], int | None]:
    """A file holds a list of job specifications, or {"jobs": [...], "concurrency": N}."""
    if isinstance(document, list):
        return document, None
    if isinstance(document, dict) and isinstance(document.get("jobs"), list):
        return document["jobs"], document.get("concurrency")
    raise typer.BadParameter(
        'expected a list of jobs or {"jobs": [...], "concurrency": N}', param_hint="FILE"
    )


@app.command()
def submit(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="JSON: a file, or - for stdin.")],
    concurrency: Annotated[
        int | None,
        typer.Option(help="At most this many at once (default: the file's, else all, to 100)."),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until every job has ended.")] = False,
    json: JsonOption = False,
) -> None:
    """Submit every job of FILE, all or none; prints the batch id (and, with --wait, exits 0
    only when every job completed)."""
    jobs, from_file = _jobs_of(read_json(file, "FILE"))
    limit = concurrency or from_file or max(1, min(len(jobs), 100))
    client = context(ctx).client
    submitted = client.batches.submit(jobs, concurrency=limit)
    if json:
        output.dump(submitted)
    elif wait:
        output.note(f"{submitted.batch_id}: {len(submitted.job_ids)} jobs, {limit} at a time")
    else:
        output.line(submitted.batch_id)
    if wait:
        raise typer.Exit(_wait(client, submitted.batch_id, len(submitted.job_ids)))


def _wait(client: Client, batch_id: str, total: int) -> int:
    try:
        with _progress(batch_id, total) as show:
            while True:
                batch = client.batches.get(batch_id)
                show(batch)
                if batch.status in ("finished", "cancelled"):
                    break
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        output.note(f"Stopped waiting for {batch_id}; its jobs go on (`cortex batch cancel`).")
        return 130
    return _report(client, batch)


@contextmanager
def _progress(batch_id: str, total: int) -> Iterator[Any]:
    """A progress bar on a terminal's stderr; elsewhere a line each time the counts change."""
    if not output.err.is_terminal:
        last: list[str] = []

        def note(batch: Batch) -> None:
            text = _counts(batch)
            if last != [text]:
                last[:] = [text]
                output.note(f"{batch_id}: {text}")

        yield note
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
        console=output.err,
        transient=False,
    ) as progress:
        task = progress.add_task(batch_id, total=total, counts="")

        def show(batch: Batch) -> None:
            done = sum(batch.counts.get(status, 0) for status in FINISHED)
            progress.update(task, completed=done, counts=_counts(batch))

        yield show


def _counts(batch: BatchSummary) -> str:
    return ", ".join(f"{n} {status}" for status, n in batch.counts.items() if n)


def _report(client: Client, batch: Batch) -> int:
    """0 when every job completed; otherwise 1, with each unsuccessful job on stderr."""
    if batch.counts.get("completed", 0) == batch.total:
        output.note(f"{batch.id}: all {batch.total} jobs completed")
        return 0
    output.note(f"{batch.id}: {_counts(batch)}")
    for summary in client.jobs.iterate(batch_id=batch.id, status=["failed", "cancelled"]):
        job = client.jobs.get(summary.id)
        results = job.results
        if job.status == "cancelled":
            output.note(f"  {job.id} was cancelled")
        elif results.reason == "exit_code":
            output.note(f"  {job.id} failed: exit code {results.exit_code}")
        else:
            output.note(f"  {job.id} failed: {results.reason}: {results.message or ''}".rstrip())
    return 1


def _show(batches: list[BatchSummary]) -> None:
    output.table(
        ("ID", "STATUS", "JOBS", "AT ONCE", "COUNTS", "CREATED"),
        (
            (b.id, b.status, b.total, b.concurrency, _counts(b), output.when(b.created_at))
            for b in batches
        ),
    )


@app.command()
def get(ctx: typer.Context, batch_id: str, json: JsonOption = False) -> None:
    """A batch with how many of its jobs are in each status (`cortex jobs list --batch ID`
    lists them)."""
    batch = context(ctx).client.batches.get(batch_id)
    output.dump(batch) if json else _show([batch])


@app.command("list")
def list_batches(ctx: typer.Context, json: JsonOption = False) -> None:
    """Every batch, newest first."""
    batches = list(context(ctx).client.batches.iterate())
    output.dump(batches) if json else _show(batches)


@app.command()
def cancel(ctx: typer.Context, batch_id: str) -> None:
    """Cancel every unfinished job of a batch."""
    batch = context(ctx).client.batches.cancel(batch_id)
    output.line(f"{batch.id}: {batch.status}")
