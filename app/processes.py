"""Asking the operating system about other processes."""

from __future__ import annotations

import os


def exists(pid: int) -> bool:
    """Whether a process with this id runs (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
