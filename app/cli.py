"""`cortex-gateway`: serve, migrate, and manage API keys.

Every command works on the same data: the embedded PostgreSQL in the data directory (shared
with a gateway that is already running there) or DATABASE_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError as SettingsError

from app import __version__, database, embedded_postgres, migrate
from app.auth import scopes, service
from app.observability import logs
from app.settings import Settings

T = TypeVar("T")
logger = logging.getLogger("app")

FIRST_ACCOUNT = "default"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cortex-gateway",
        description="Run container jobs on Akash, Render, Golem or a local runtime.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate the database and start the gateway")
    serve.add_argument("--host", help="address to listen on (CORTEX_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (CORTEX_PORT, default 8000)")

    commands.add_parser("migrate", help="apply database migrations and exit")

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="create a key; prints it once, last line")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument(
        "--account", default=FIRST_ACCOUNT, help=f"account name (default {FIRST_ACCOUNT!r})"
    )
    create.add_argument(
        "--scope",
        action="append",
        dest="scopes",
        metavar="SCOPE",
        help="repeatable: "
        + ", ".join(scope.value for scope in scopes.Scope)
        + " (default: "
        + ", ".join(scope.value for scope in scopes.DEFAULT_SCOPES)
        + ")",
    )
    key_commands.add_parser("list", help="list keys (never their secrets)")
    revoke = key_commands.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", metavar="ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        settings = Settings()
    except SettingsError as exc:
        print(f"cortex-gateway: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    logs.configure(settings)
    try:
        if arguments.command == "serve":
            return _serve(settings, arguments.host, arguments.port)
        url = _prepare_database(settings)
        if arguments.command == "migrate":
            print("Database is up to date.")
            return 0
        return _keys(arguments, url)
    except KeyboardInterrupt:
        return 130
    except Exception:
        # Through logging, so that with JSON logs even a crash is one JSON line.
        logger.critical("cortex-gateway %s failed", arguments.command, exc_info=True)
        return 1
    finally:
        embedded_postgres.stop_all()


def _prepare_database(settings: Settings) -> str:
    url = database.resolve_url(settings)
    migrate.upgrade(url)
    return url


def _run(url: str, use_case: Callable[[Any], Awaitable[T]]) -> T:
    """Run one use case in one transaction on a short-lived engine."""

    async def run() -> T:
        engine = database.create_engine(url, pool_size=1)
        try:
            async with database.transaction(engine) as connection:
                return await use_case(connection)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _keys(arguments: argparse.Namespace, url: str) -> int:
    if arguments.keys_command == "create":
        try:
            chosen = scopes.parse_scopes(arguments.scopes or list(scopes.DEFAULT_SCOPES))
        except ValueError as exc:
            print(f"cortex-gateway: {exc}", file=sys.stderr)
            return 2
        created = _run(
            url,
            lambda c: service.create_key(
                c, name=arguments.name, account=arguments.account, scopes=chosen
            ),
        )
        key = created.key
        print(f"Created API key {key['id']} ({key['name']}) for account {key['account_name']}")
        print(f"Scopes: {' '.join(key['scopes'])}")
        print("The key is shown only this once:")
        print(created.secret)
        return 0
    if arguments.keys_command == "list":
        rows = _run(url, service.list_keys)
        header = ("ID", "NAME", "ACCOUNT", "PREFIX", "SCOPES", "CREATED", "LAST USED", "REVOKED")
        table = [header] + [
            (
                row["id"],
                row["name"],
                row["account_name"],
                row["prefix"] + "…",
                ",".join(row["scopes"]),
                _when(row["created_at"]),
                _when(row["last_used_at"]),
                _when(row["revoked_at"]),
            )
            for row in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        for line in table:
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        return 0
    try:
        row = _run(url, lambda c: service.revoke_key(c, arguments.key_id))
    except service.KeyNotFound:
        print(f"cortex-gateway: no API key with id {arguments.key_id}", file=sys.stderr)
        return 1
    print(f"Revoked API key {row['id']} ({row['name']}) at {_when(row['revoked_at'])}")
    return 0


def _when(moment: Any) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    import uvicorn

    from app.application import create_app

    host = host or settings.host
    port = settings.port if port is None else port
    where = (
        "DATABASE_URL" if settings.database_url else f"embedded PostgreSQL in {settings.data_dir}"
    )
    say = _announcer(settings)
    say(f"Cortex Gateway {__version__}: database: {where}")
    url = _prepare_database(settings)
    first_key = _run(url, _create_first_key)
    base = f"http://{_url_host(host)}:{port}/api/plugin-core"
    if first_key is not None:
        say(
            "\nCreated the first API key (admin scope, account 'default')."
            " It is shown only this once; keep it:\n"
            f"\n    {first_key}\n\n"
            f"Try it:\n    curl -H 'Authorization: Bearer {first_key}' {base}/jobs\n"
        )
    dashboard = base.removesuffix("/api/plugin-core") + "/"
    say(f"Serving the API at {base} and the dashboard at {dashboard} (Ctrl-C stops)")
    app = create_app(settings, database_url=url)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level,
        lifespan="on",
        # JSON logs: uvicorn's own lines go through the gateway's handler, like every other.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    say("Gateway stopped.")
    return 0


def _announcer(settings: Settings) -> Callable[[str], None]:
    """What `serve` tells its operator: printed for people, logged when logs are JSON (so
    that every line of the output is one JSON object)."""
    if settings.log_format == "json":
        return lambda text: logger.info(text.strip())
    return lambda text: print(text, flush=True)


async def _create_first_key(connection: Any) -> str | None:
    """On a database with no keys at all, create an admin key (once, even with several
    gateways starting together)."""
    if not await service.lock_and_check_no_keys(connection):
        return None
    created = await service.create_key(
        connection, name="first admin key", account=FIRST_ACCOUNT, scopes=[scopes.Scope.ADMIN]
    )
    return created.secret


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
