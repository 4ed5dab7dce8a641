"""The blocking client is generated from the async one, and the generated file is current."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "clients" / "python" / "scripts" / "unasync.py"


def test_sync_py_is_what_unasync_makes_of_aio_py() -> None:
    check = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
