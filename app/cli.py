"""`cortex-gateway`: serve, migrate, and manage API keys.

Every command works on the same data: the embedded PostgreSQL in the data directory (shared
with a gateway that is already running there) or DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError as SettingsError

from app import __version__, database, embedded_postgres, migrate
from app.accounts import cli_options
from app.accounts import limits as account_limits
from app.accounts import service as accounts_service
from app.accounts.limits import BudgetPeriod
from app.auth import scopes, service
from app.observability import logs, metrics
from app.settings import MAX_WORKERS, Settings

T = TypeVar("T")
logger = logging.getLogger("app")

FIRST_ACCOUNT = "default"
# Where the first admin key goes when JSON logs run without a terminal (in the data directory).
FIRST_KEY_FILE = "first-admin-key"
PROGRAM = "cortex-gateway"
ROLES = ("all", "api", "engine")

cli = typer.Typer(
    name=PROGRAM,
    help="Run container jobs on Akash, Render, Golem or a local runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
keys_cli = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
accounts_cli = typer.Typer(
    help="Show accounts and set their limits (effective within seconds in every gateway).",
    no_args_is_help=True,
)
cli.add_typer(accounts_cli, name="accounts")


def main(argv: Sequence[str] | None = None) -> int:
    """`cortex-gateway` and `python -m app`: the exit status of the command."""
    try:
        cli(args=argv, prog_name=PROGRAM)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return 0


def _show_version(value: bool) -> None:
    if value:
        print(f"{PROGRAM} {__version__}")
        raise typer.Exit()


@cli.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Run container jobs on Akash, Render, Golem or a local runtime.

    Every command works on the same data: the embedded PostgreSQL in the data directory
    (shared with a gateway already running there) or DATABASE_URL."""


@cli.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (CORTEX_HOST, default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (CORTEX_PORT, default 8000).")
    ] = None,
    admin_key_file: Annotated[
        Path | None,
        typer.Option(
            help="Write the first admin key to this file (mode 0600) rather than showing it"
            " (CORTEX_ADMIN_KEY_FILE)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            help="Worker processes sharing the port and the database (CORTEX_WORKERS,"
            " default one per core).",
        ),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(
            help="all: API and engine; api: HTTP only; engine: engine, webhooks and pruner,"
            " with only /healthz, /readyz and /metrics (CORTEX_ROLE, default all)."
        ),
    ] = None,
) -> None:
    """Migrate the database and start the gateway."""
    if role is not None and role.lower() not in ROLES:
        _error(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
        raise typer.Exit(2)

    def run(settings: Settings) -> int:
        chosen: dict[str, Any] = {"workers": workers, "role": role.lower() if role else None}
        settings = settings.model_copy(update={k: v for k, v in chosen.items() if v is not None})
        return _serve(settings, host, port, admin_key_file)

    _execute("serve", run)


@cli.command("migrate")
def migrate_command() -> None:
    """Apply database migrations and exit."""

    def up_to_date(settings: Settings) -> int:
        _prepare_database(settings)
        print("Database is up to date.")
        return 0

    _execute("migrate", up_to_date)


@keys_cli.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    account: Annotated[
        str, typer.Option(help=f"Account name (default {FIRST_ACCOUNT!r}).", show_default=False)
    ] = FIRST_ACCOUNT,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SCOPE",
            help="Repeatable: "
            + ", ".join(scope.value for scope in scopes.Scope)
            + " (default: "
            + ", ".join(scope.value for scope in scopes.DEFAULT_SCOPES)
            + ").",
        ),
    ] = None,
    budget_usd: Annotated[
        float | None,
        typer.Option(min=0, help="A spending budget of the key's own, in USD per --budget-period."),
    ] = None,
    budget_period: Annotated[
        str, typer.Option(help="day, month or total (with --budget-usd).")
    ] = "month",
) -> None:
    """Create a key; prints it once, on the last line."""
    try:
        chosen = scopes.parse_scopes(scope or list(scopes.DEFAULT_SCOPES))
        period = BudgetPeriod(budget_period).value
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    budget = Decimal(str(budget_usd)) if budget_usd is not None else None

    def create(settings: Settings) -> int:
        url = _prepare_database(settings)
        created = _run(
            url,
            lambda c: service.create_key(
                c,
                name=name,
                account=account,
                scopes=chosen,
                budget_usd=budget,
                budget_period=period,
            ),
        )
        key = created.key
        print(f"Created API key {key['id']} ({key['name']}) for account {key['account_name']}")
        print(f"Scopes: {' '.join(key['scopes'])}")
        if budget is not None:
            print(f"Budget: ${budget} per {period}")
        print("The key is shown only this once:")
        print(created.secret)
        return 0

    _execute("keys", create)


@keys_cli.command("list")
def list_keys() -> None:
    """List keys (never their secrets)."""

    def show(settings: Settings) -> int:
        rows = _run(_prepare_database(settings), service.list_keys)
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

    _execute("keys", show)


@keys_cli.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Revoke a key at once."""

    def revoke(settings: Settings) -> int:
        url = _prepare_database(settings)
        try:
            row = _run(url, lambda c: service.revoke_key(c, key_id))
        except service.KeyNotFound:
            _error(f"no API key with id {key_id}")
            return 1
        print(f"Revoked API key {row['id']} ({row['name']}) at {_when(row['revoked_at'])}")
        return 0

    _execute("keys", revoke)


_N = "N, 0 for unlimited, or 'default' to use the operator's default"


@accounts_cli.command("list")
def list_accounts() -> None:
    """List accounts with their overridden limits."""

    def show(settings: Settings) -> int:
        rows = _run(_prepare_database(settings), accounts_service.list_accounts)
        for row in rows:
            changed = {k: v for k, v in _override_columns(row).items() if v is not None}
            text = " ".join(f"{k}={_value(v)}" for k, v in changed.items()) or "defaults"
            print(f"{row['id']}  {row['name']}  {text}")
        return 0

    _execute("accounts", show)


@accounts_cli.command("show")
def show_account(account: Annotated[str, typer.Argument(metavar="ACCOUNT")]) -> None:
    """An account's effective limits, and which are overridden."""

    def show(settings: Settings) -> int:
        async def read(connection: Any) -> tuple[Any, Any]:
            found = await accounts_service.find_account(connection, account)
            if found is None:
                return None, None
            return found, await accounts_service.overrides(connection, found["id"])

        found, row = _run(_prepare_database(settings), read)
        if found is None:
            _error(f"no account {account!r}")
            return 1
        limits = accounts_service.apply_overrides(account_limits.defaults(settings), row)
        row = row or {}
        print(f"Account {found['id']} ({found['name']})")
        for name, value in _effective(limits).items():
            source = "override" if row.get(_COLUMN.get(name, name)) is not None else "default"
            print(f"  {name}: {_value(value)} ({source})")
        return 0

    _execute("accounts", show)


_COLUMN = {"budget": "budget_usd"}


@accounts_cli.command("set")
def set_account(
    account: Annotated[str, typer.Argument(metavar="ACCOUNT")],
    rate_limit: Annotated[str | None, typer.Option(help="Requests/s per key: 50/s, " + _N)] = None,
    rate_burst: Annotated[str | None, typer.Option(help="Burst per key: " + _N)] = None,
    max_active_jobs: Annotated[str | None, typer.Option(help=_N)] = None,
    max_jobs_per_batch: Annotated[str | None, typer.Option(help=_N)] = None,
    max_streams: Annotated[str | None, typer.Option(help="Open streams per key: " + _N)] = None,
    max_webhook_endpoints: Annotated[str | None, typer.Option(help=_N)] = None,
    max_templates: Annotated[str | None, typer.Option(help=_N)] = None,
    max_engine_slots: Annotated[str | None, typer.Option(help=_N)] = None,
    budget_usd: Annotated[
        str | None, typer.Option(help="USD per period, 'none' (no budget) or 'default'.")
    ] = None,
    budget_period: Annotated[
        str | None, typer.Option(help="day, month, total or 'default'.")
    ] = None,
    providers: Annotated[
        str | None,
        typer.Option(help="Providers the account may use: local,akash,... or 'default' (all)."),
    ] = None,
) -> None:
    """Override an account's limits; options not given keep their current value."""
    values: dict[str, Any] = {}
    try:
        if rate_limit is not None:
            values["rate_limit"] = cli_options.rate("--rate-limit", rate_limit)
        counts = {
            "rate_burst": ("--rate-burst", rate_burst),
            "max_active_jobs": ("--max-active-jobs", max_active_jobs),
            "max_jobs_per_batch": ("--max-jobs-per-batch", max_jobs_per_batch),
            "max_streams_per_key": ("--max-streams", max_streams),
            "max_webhook_endpoints": ("--max-webhook-endpoints", max_webhook_endpoints),
            "max_templates": ("--max-templates", max_templates),
            "max_engine_slots": ("--max-engine-slots", max_engine_slots),
        }
        for column, (option, raw) in counts.items():
            if raw is not None:
                values[column] = cli_options.count(option, raw)
        if budget_usd is not None:
            values["budget_usd"], period = cli_options.budget("--budget-usd", budget_usd)
            values["budget_period"] = period
        if budget_period is not None:
            if values.get("budget_period") is not None:
                raise cli_options.BadValue("--budget-period: not with --budget-usd none")
            values["budget_period"] = cli_options.period("--budget-period", budget_period)
        if providers is not None:
            values["allowed_providers"] = cli_options.providers("--providers", providers)
    except cli_options.BadValue as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    if not values:
        _error("nothing to set: give at least one option (see --help)")
        raise typer.Exit(2)

    def update(settings: Settings) -> int:
        try:
            found = _run(
                _prepare_database(settings),
                lambda c: accounts_service.set_limits(c, account, values),
            )
        except accounts_service.AccountNotFound:
            _error(f"no account {account!r}")
            return 1
        changed = ", ".join(f"{k}={_value(v, cleared='default')}" for k, v in values.items())
        print(f"Set {changed} for account {found['id']} ({found['name']})")
        return 0

    _execute("accounts", update)


def _override_columns(row: Any) -> dict[str, Any]:
    return {
        name: row[name]
        for name in (
            "rate_limit",
            "rate_burst",
            "max_active_jobs",
            "max_jobs_per_batch",
            "max_streams_per_key",
            "max_webhook_endpoints",
            "max_templates",
            "max_engine_slots",
            "budget_usd",
            "budget_period",
            "allowed_providers",
        )
    }


def _effective(limits: account_limits.AccountLimits) -> dict[str, Any]:
    budget = limits.budget
    return {
        "rate_limit": limits.rate_limit,
        "rate_burst": limits.rate_burst,
        "max_active_jobs": limits.max_active_jobs,
        "max_jobs_per_batch": limits.max_jobs_per_batch,
        "max_streams_per_key": limits.max_streams_per_key,
        "max_webhook_endpoints": limits.max_webhook_endpoints,
        "max_templates": limits.max_templates,
        "max_engine_slots": limits.max_engine_slots,
        "budget": f"{budget.usd} USD per {budget.period.value}" if budget else None,
        "allowed_providers": sorted(limits.allowed_providers)
        if limits.allowed_providers is not None
        else None,
    }


def _value(value: Any, cleared: str = "unlimited") -> str:
    if value is None:
        return cleared
    if isinstance(value, list):
        return ",".join(value)
    return "unlimited" if value == 0 and not isinstance(value, bool) else str(value)


def _execute(command: str, body: Callable[[Settings], int]) -> None:
    """Run a command with the settings and logging it needs, and end with its status.

    Arguments are checked before the settings are read, so a mistyped option is reported
    as such even when the configuration is also wrong."""
    try:
        settings = Settings()
    except SettingsError as exc:
        _error(f"invalid configuration:\n{exc}")
        raise typer.Exit(2) from None
    logs.configure(settings)
    try:
        status = body(settings)
    except KeyboardInterrupt:
        status = 130
    except Exception:
        # Through logging, so that with JSON logs even a crash is one JSON line.
        logger.critical("%s %s failed", PROGRAM, command, exc_info=True)
        status = 1
    finally:
        embedded_postgres.stop_all()
    raise typer.Exit(status)


def _error(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr)


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


def _when(moment: Any) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _serve(
    settings: Settings, host: str | None, port: int | None, key_file: Path | None = None
) -> int:
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
    key_file = key_file or settings.admin_key_file
    if key_file is None and settings.log_format == "json" and not sys.stderr.isatty():
        # JSON logs without a terminal are collected by something: the key goes to a file only
        # its owner can read, and the log says where, so no line of them ever holds it.
        key_file = settings.data_dir / FIRST_KEY_FILE
    if first_key is not None and key_file is not None:
        _write_secret(key_file, first_key)
        say(f"Created the first API key (admin scope, account 'default'); it is in {key_file}")
    elif first_key is not None:
        # Shown on the terminal only, never in a log line (which may be collected and kept).
        if settings.log_format == "json":
            say("Created the first API key (admin scope, account 'default'); shown on stderr")
        print(
            "\nCreated the first API key (admin scope, account 'default')."
            " It is shown only this once; keep it:\n"
            f"\n    {first_key}\n\n"
            f"Try it:\n    curl -H 'Authorization: Bearer {first_key}' {base}/jobs\n",
            file=sys.stderr if settings.log_format == "json" else sys.stdout,
            flush=True,
        )
    dashboard = base.removesuffix("/api/plugin-core") + "/"
    count = settings.worker_count
    shape = f"{count} worker processes" if count > 1 else "one process"
    if settings.role == "engine":
        top = dashboard.removesuffix("/")
        say(f"Running the engine ({shape}); probes and metrics at {top}/readyz (Ctrl-C stops)")
    else:
        say(f"Serving the API at {base} and the dashboard at {dashboard} ({shape}; Ctrl-C stops)")
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        log_level=settings.log_level,
        lifespan="on",
        # JSON logs: uvicorn's own lines go through the gateway's handler, like every other.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    # uvicorn stops on SIGTERM as on SIGINT, then raises the signal again: end as on Ctrl-C
    # (status 0, the embedded database stopped) rather than die of it.
    previous = signal.signal(signal.SIGTERM, _stopped_by_signal)
    try:
        if count == 1:
            uvicorn.run(create_app(settings, database_url=url), **options)
        else:
            # Each worker builds its gateway from the environment (app.workers): the database
            # this process resolved (and keeps running) and the role chosen here.
            os.environ["DATABASE_URL"] = url
            os.environ["CORTEX_ROLE"] = settings.role
            with _shared_metrics():
                uvicorn.run("app.workers:worker_app", factory=True, workers=count, **options)
    except _Stopped:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    say("Gateway stopped.")
    return 0


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """A directory where the workers keep their metrics, so that a scrape answered by any
    one of them covers all (app/observability/metrics.py); gone when they are."""
    shared = tempfile.mkdtemp(prefix="cortex-metrics-")
    os.environ[metrics.MULTIPROCESS_DIR] = shared
    try:
        yield
    finally:
        os.environ.pop(metrics.MULTIPROCESS_DIR, None)
        shutil.rmtree(shared, ignore_errors=True)


class _Stopped(Exception):
    """SIGTERM arrived after the server had stopped."""


def _stopped_by_signal(signum: int, frame: object) -> None:
    raise _Stopped


def _write_secret(path: Path, secret: str) -> None:
    """Write `secret` to a file only its owner can read, created so from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through os.open
        os.write(descriptor, (secret + "\n").encode())
    finally:
        os.close(descriptor)


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
