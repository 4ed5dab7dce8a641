"""Reading the JSON files commands take (`-` for standard input)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer


def read_json(path: str, option: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return json.loads(text)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=option) from exc
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{path} is not JSON: {exc}", param_hint=option) from exc
