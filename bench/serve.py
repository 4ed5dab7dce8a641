"""Serve the gateway or the bare app under uvicorn, wrapped in the timing middleware.

Run by jobs_api.py as a child process, one per app, so that the server's event loop is not
shared with the load generator's (they still share the machine's cores).

    python bench/serve.py {gateway,bare} --port PORT --database-url URL [--account-id ID]
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
from typing import Any

import uvicorn
from sqlalchemy.engine import make_url

import timing


def asyncpg_dsn(url: str) -> str:
    """postgresql+asyncpg://... (SQLAlchemy's form) -> postgresql://... (asyncpg's form)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _reachable_local_provider(settings: Any) -> list[Any]:
    """The real `local` adapter, except that it reports the container runtime healthy.

    POST /jobs asks the job's provider for its health before storing anything, and there is
    no container runtime on the benchmark machine. The real adapter caches a good answer
    for a few seconds, so on a live gateway almost every request is served from that cache:
    this stand-in answers as the cache would, and keeps the adapter's own capability checks.
    """
    try:
        from providers.local import LocalProvider
        from providers.types import Health
    except ImportError:
        return []

    class ReachableLocalProvider(LocalProvider):
        async def health(self) -> Health:
            return Health(True, detail={"dockerHost": "benchmark stand-in"})

    return [ReachableLocalProvider(**settings.provider_options("local"))]


# The active-jobs quota the gateway runs with unless told otherwise: out of reach (below).
OUT_OF_REACH_ACTIVE_JOBS = 100_000_000


def build_app(
    kind: str,
    database_url: str,
    account_id: str | None,
    max_active_jobs: int = OUT_OF_REACH_ACTIVE_JOBS,
) -> timing.ServerTimings:
    if kind == "gateway":
        from app.application import create_app
        from app.settings import Settings

        timing.install_sqlalchemy_timer()
        # The gateway as it ships (pool of 10 + 10 overflow, ...) on the benchmark database,
        # minus the background job engine where the tree has one: it is not on the request
        # path, and with no container runtime here it would only retry submissions of the
        # seeded pending jobs. (Settings ignores the keyword on trees without an engine.)
        # The per-key rate limit and the active-jobs quota are set out of reach (both still
        # run on every request): at their defaults (100/s, 1,000 active jobs) the load would
        # measure 429 and 403 answers instead of the API's work.
        # Role `api` (HTTP only, as a deployment's API processes run): the retention pruner and
        # the webhook dispatcher are not on the request path either, and the pruner's first
        # pass (10 s after start) works through the seeded finished jobs while the requests
        # are measured (4 % of the gateway's samples in a list run of 2026-12-05).
        settings = Settings(
            role="api",
            engine_enabled=False,
            default_rate_limit=1_000_000,
            default_rate_burst=1_000_000,
            default_max_active_jobs=max_active_jobs,
        )
        options: dict[str, Any] = {}
        if "extra_providers" in inspect.signature(create_app).parameters:
            options["extra_providers"] = _reachable_local_provider(settings)
        return timing.ServerTimings(create_app(settings, database_url=database_url, **options))
    import bare_app

    if account_id is None:
        raise SystemExit("the bare app needs --account-id")
    app = bare_app.create_app(
        asyncpg_dsn(database_url), account_id, on_connect=timing.attach_asyncpg_logger
    )
    return timing.ServerTimings(app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["gateway", "bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--account-id")
    parser.add_argument("--max-active-jobs", type=int, default=OUT_OF_REACH_ACTIVE_JOBS)
    args = parser.parse_args()
    app = build_app(args.kind, args.database_url, args.account_id, args.max_active_jobs)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        workers=1,
        # uvloop + httptools, as `uvicorn[standard]` installs them; named rather than "auto"
        # so the choice is explicit (jobs_api.py records which one ran).
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
