"""`cortex templates ...`: named job specifications (submit one with `cortex jobs submit
--template ID`)."""

from __future__ import annotations

from typing import Annotated

import typer

from cortex_client import Template
from cortex_client.cli import output
from cortex_client.cli.app import context
from cortex_client.cli.files import read_json

app = typer.Typer(help="Job templates.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON, for scripts.")]
ConfigOption = Annotated[
    str, typer.Option("--config", help="A job specification as JSON: a file, or - for stdin.")
]


def _show(templates: list[Template]) -> None:
    output.table(
        ("ID", "NAME", "PROVIDER", "IMAGE", "UPDATED", "DESCRIPTION"),
        (
            (
                t.id,
                t.name,
                t.config.get("provider"),
                t.config.get("image"),
                output.when(t.updated_at),
                t.description,
            )
            for t in templates
        ),
    )


@app.command("list")
def list_templates(
    ctx: typer.Context,
    sort: Annotated[
        str | None, typer.Option(help="e.g. name:asc (default createdAt:desc).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Every template of the account."""
    templates = list(context(ctx).client.templates.iterate(sort=sort))
    output.dump(templates) if json else _show(templates)


@app.command()
def get(ctx: typer.Context, template_id: str, json: JsonOption = False) -> None:
    """One template (its config as JSON with --json)."""
    template = context(ctx).client.templates.get(template_id)
    output.dump(template) if json else _show([template])


@app.command()
def create(
    ctx: typer.Context,
    name: str,
    config: ConfigOption,
    description: Annotated[str | None, typer.Option()] = None,
    json: JsonOption = False,
) -> None:
    """Save a job specification under a name; prints its id."""
    spec = read_json(config, "--config")
    template = context(ctx).client.templates.create(name, spec, description=description)
    output.dump(template) if json else output.line(template.id)


@app.command()
def update(
    ctx: typer.Context,
    template_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    config: Annotated[
        str | None, typer.Option("--config", help="A new specification (replaces the old).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Rename, describe or replace a template's specification."""
    spec = read_json(config, "--config") if config is not None else None
    template = context(ctx).client.templates.update(
        template_id, name=name, description=description, config=spec
    )
    output.dump(template) if json else _show([template])


@app.command()
def delete(ctx: typer.Context, template_id: str) -> None:
    """Delete a template (jobs made from it stay)."""
    context(ctx).client.templates.delete(template_id)
    output.note(f"Deleted {template_id}.")
