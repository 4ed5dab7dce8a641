"""The `cortex` command (the user's CLI; `cortex-gateway` in app/cli.py runs the
server)."""

from __future__ import annotations

import sys

from cortex_client import CortexError, errors
from cortex_client.cli import account, batch, jobs, output, profiles, providers, templates, webhooks
from cortex_client.cli.app import app

app.add_typer(jobs.app, name="jobs")
app.add_typer(batch.app, name="batch")
app.add_typer(templates.app, name="templates")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(providers.app, name="providers")
app.add_typer(account.app, name="account")


def main() -> None:
    """The console script: API errors become their code and message on stderr (exit 1), never
    a traceback."""
    try:
        app(prog_name="cortex")
    except errors.ApiError as exc:
        output.api_error(exc)
        sys.exit(1)
    except (CortexError, profiles.NotConfigured) as exc:
        output.failure(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
