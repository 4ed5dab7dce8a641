"""Where `cortex` finds its gateway: CORTEX_URL and CORTEX_API_KEY, or a profile saved by
`cortex login` in the user's config directory (readable by the user only)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

DEFAULT_PROFILE = "default"


class NotConfigured(Exception):
    """No gateway URL (or key) could be found."""


@dataclass(frozen=True)
class Profile:
    url: str
    api_key: str | None


def config_file() -> Path:
    return platformdirs.user_config_path("cortex") / "config.json"


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"profiles": {}}
    data: dict[str, Any] = json.loads(path.read_text())
    data.setdefault("profiles", {})
    return data


def save(name: str, profile: Profile) -> Path:
    """Store the profile; the file (it holds an API key) is created 0600 in a 0700 directory
    and is made so again if it already existed."""
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = _read(path)
    data["profiles"][name] = {"url": profile.url, "apiKey": profile.api_key}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(data, file, indent=2)
        file.write("\n")
    return path


def remove(name: str) -> bool:
    path = config_file()
    data = _read(path)
    if data["profiles"].pop(name, None) is None:
        return False
    descriptor = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(descriptor, "w") as file:
        json.dump(data, file, indent=2)
    return True


def saved(name: str) -> Profile | None:
    """The profile saved under `name`, if any (the environment aside)."""
    found = _read(config_file())["profiles"].get(name)
    if found is None:
        return None
    return Profile(url=found["url"], api_key=found.get("apiKey"))


def resolve(name: str | None) -> Profile:
    """The environment's CORTEX_URL / CORTEX_API_KEY, each falling back to the profile."""
    saved = _read(config_file())["profiles"].get(name or DEFAULT_PROFILE, {})
    url = os.environ.get("CORTEX_URL") or saved.get("url")
    key = os.environ.get("CORTEX_API_KEY") or saved.get("apiKey")
    if not url:
        where = f"profile {name!r}" if name else "CORTEX_URL"
        raise NotConfigured(
            f"no gateway configured ({where}): run `cortex login --url URL` or set CORTEX_URL "
            "and CORTEX_API_KEY"
        )
    return Profile(url=url, api_key=key)
