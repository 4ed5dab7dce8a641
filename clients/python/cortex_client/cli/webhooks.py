"""`cortex webhooks ...`: endpoints, their secrets, deliveries and retries."""

from __future__ import annotations

from typing import Annotated

import typer

from cortex_client import Delivery, Endpoint
from cortex_client.cli import output
from cortex_client.cli.app import context

app = typer.Typer(help="Webhook endpoints and their deliveries.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON, for scripts.")]


def _endpoints(endpoints: list[Endpoint]) -> None:
    output.table(
        ("ID", "URL", "EVENTS", "ACTIVE", "DISABLED BECAUSE"),
        (
            (e.id, e.url, ",".join(e.events), "yes" if e.active else "no", e.disabled_reason)
            for e in endpoints
        ),
    )


def _deliveries(deliveries: list[Delivery]) -> None:
    output.table(
        ("ID", "EVENT", "JOB", "STATUS", "ATTEMPTS", "LAST ANSWER", "NEXT ATTEMPT"),
        (
            (
                d.id,
                d.event_type,
                d.job_id or "-",
                d.status,
                len(d.attempts),
                _last_answer(d),
                output.when(d.next_attempt_at),
            )
            for d in deliveries
        ),
    )


def _last_answer(delivery: Delivery) -> str:
    if not delivery.attempts:
        return "-"
    last = delivery.attempts[-1]
    return str(last.status_code) if last.status_code is not None else (last.error or "-")


@app.command("list")
def list_endpoints(ctx: typer.Context, json: JsonOption = False) -> None:
    """Every endpoint of the account (secrets are never listed)."""
    endpoints = list(context(ctx).client.webhooks.iterate())
    output.dump(endpoints) if json else _endpoints(endpoints)


@app.command()
def create(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="Where deliveries are POSTed.")],
    event: Annotated[
        list[str], typer.Option(help="job.created … job.cancelled, or *; repeatable.")
    ],
    description: Annotated[str | None, typer.Option()] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            help="Your own signing secret (16-256 characters; signs with its UTF-8 bytes);"
            " default: a generated whsec_ secret."
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Subscribe a URL; prints the signing secret, which is shown only this once."""
    endpoint = context(ctx).client.webhooks.create(
        url, event, secret=secret, description=description
    )
    if json:
        output.dump(endpoint)
        return
    output.note(f"Created {endpoint.id}. Its signing secret (shown once):")
    output.line(endpoint.secret)


@app.command()
def get(ctx: typer.Context, endpoint_id: str, json: JsonOption = False) -> None:
    """One endpoint."""
    endpoint = context(ctx).client.webhooks.get(endpoint_id)
    output.dump(endpoint) if json else _endpoints([endpoint])


@app.command()
def update(
    ctx: typer.Context,
    endpoint_id: str,
    url: Annotated[str | None, typer.Option()] = None,
    event: Annotated[
        list[str] | None, typer.Option(help="Replaces the events; repeatable.")
    ] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    json: JsonOption = False,
) -> None:
    """Change an endpoint (`--active` turns a disabled one back on)."""
    endpoint = context(ctx).client.webhooks.update(
        endpoint_id, url=url, events=event, active=active, description=description
    )
    output.dump(endpoint) if json else _endpoints([endpoint])


@app.command()
def delete(ctx: typer.Context, endpoint_id: str) -> None:
    """Delete an endpoint and its deliveries."""
    context(ctx).client.webhooks.delete(endpoint_id)
    output.note(f"Deleted {endpoint_id}.")


@app.command("rotate-secret")
def rotate_secret(ctx: typer.Context, endpoint_id: str) -> None:
    """A new signing secret (printed once); the old one keeps signing for a grace period."""
    endpoint = context(ctx).client.webhooks.rotate_secret(endpoint_id)
    output.line(endpoint.secret)


@app.command()
def test(ctx: typer.Context, endpoint_id: str, json: JsonOption = False) -> None:
    """Send a webhook.test event to the endpoint."""
    delivery = context(ctx).client.webhooks.test(endpoint_id)
    output.dump(delivery) if json else _deliveries([delivery])


@app.command()
def deliveries(
    ctx: typer.Context,
    endpoint_id: str,
    status: Annotated[str | None, typer.Option(help="pending, succeeded or failed.")] = None,
    limit: Annotated[int, typer.Option(help="How many (1-100).")] = 20,
    json: JsonOption = False,
) -> None:
    """An endpoint's deliveries, newest first, with their attempts."""
    page = context(ctx).client.webhooks.deliveries(endpoint_id, status=status, limit=limit)
    output.dump(page.items) if json else _deliveries(page.items)


@app.command()
def retry(ctx: typer.Context, endpoint_id: str, delivery_id: str, json: JsonOption = False) -> None:
    """Send a delivery again now."""
    delivery = context(ctx).client.webhooks.retry(endpoint_id, delivery_id)
    output.dump(delivery) if json else _deliveries([delivery])
