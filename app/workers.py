"""`serve --workers N`: N gateway processes sharing one listening socket and one database.

uvicorn's own supervisor binds the socket once, spawns the workers, restarts one that dies
(a worker that fails before it serves stops the whole gateway instead: it would fail the same
way again), and on SIGINT or SIGTERM stops them all and waits for each. Each worker imports
this factory and builds its own gateway, lifespan included: its own engine (with its own
owner id and leases), webhook dispatcher, pruner, stream listener and connection pool. The
parent resolved the database (starting the embedded PostgreSQL), migrated it and passed its
URL to the workers in DATABASE_URL; it stops that server once every worker has exited.

A worker whose parent dies without stopping it (SIGKILL) gets SIGTERM from the kernel and
stops as on Ctrl-C, handing its jobs back, rather than serving on as an orphan.
"""

from __future__ import annotations

import ctypes
import signal
import sys

from starlette.applications import Starlette

from app.application import create_app
from app.observability import logs
from app.settings import Settings


def worker_app() -> Starlette:
    """The gateway of one worker process, configured from the environment `serve` set."""
    _stop_with_parent()
    settings = Settings()
    logs.configure(settings)
    return create_app(settings)


_PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """Ask Linux for SIGTERM when the parent process ends (elsewhere: nothing)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
