"""The client stands alone: importing it and its command line loads nothing of the server."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_SIDE = ("app", "providers", "starlette", "sqlalchemy", "asyncpg", "alembic")
PROGRAM = """
import json, sys
import cortex_client, cortex_client.cli
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_client_and_its_cli_loads_no_server_module() -> None:
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(run.stdout)
    assert [m for m in loaded if m.split(".")[0] in SERVER_SIDE] == []
