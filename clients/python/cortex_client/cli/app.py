"""`cortex`: the gateway from a terminal. Commands are grouped by resource; each one calls the
Python client, so everything the client does (retries, resumed streams) the CLI does too."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cortex_client import Client
from cortex_client.cli import output, profiles

app = typer.Typer(
    name="cortex",
    help="Run and follow container jobs on a Cortex Gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Context:
    """What every command needs: the chosen profile, and a client made on first use."""

    def __init__(self, profile: str | None):
        self.profile = profile
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            found = profiles.resolve(self.profile)
            self._client = Client(url=found.url, api_key=found.api_key)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def context(ctx: typer.Context) -> Context:
    found: Context = ctx.find_root().obj
    return found


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(envvar="CORTEX_PROFILE", help="A profile saved by `cortex login`."),
    ] = None,
) -> None:
    """Configure with CORTEX_URL and CORTEX_API_KEY, or once with `cortex login --url URL`."""
    ctx.obj = Context(profile)
    ctx.call_on_close(ctx.obj.close)


@app.command()
def login(
    url: Annotated[str, typer.Option(help="The gateway, e.g. http://127.0.0.1:8000.")],
    profile: Annotated[
        str, typer.Option(envvar="CORTEX_PROFILE", help="Save under this name.")
    ] = profiles.DEFAULT_PROFILE,
) -> None:
    """Check an API key against a gateway and save both in your config directory (0600).

    The key is read from a hidden prompt, or from standard input when it is not a terminal."""
    if sys.stdin.isatty():
        api_key = typer.prompt("API key", hide_input=True).strip()
    else:
        api_key = sys.stdin.readline().strip()
    if not api_key:
        output.failure("no API key given")
        raise typer.Exit(1)
    with Client(url=url, api_key=api_key, max_retries=0) as client:
        client.jobs.list(limit=1)
    path = profiles.save(profile, profiles.Profile(url=url, api_key=api_key))
    output.note(f"Logged in to {client.url} (profile {profile!r}, saved in {path}).")


@app.command()
def logout(
    profile: Annotated[
        str, typer.Option(envvar="CORTEX_PROFILE", help="The profile to forget.")
    ] = profiles.DEFAULT_PROFILE,
) -> None:
    """Forget a saved profile and its key."""
    if not profiles.remove(profile):
        output.failure(f"no profile {profile!r}")
        raise typer.Exit(1)
