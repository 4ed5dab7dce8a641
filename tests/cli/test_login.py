"""`cortex login`: the key is checked, then saved where only its owner can read it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.cli.conftest import Cortex


async def test_login_saves_a_checked_key_readable_only_by_its_owner(
    tmp_path: Path, gateway_url: str, api_key: str
) -> None:
    cortex = Cortex(tmp_path / "config")
    saved = await cortex("login", "--url", gateway_url, input=api_key + "\n")
    assert saved.code == 0, saved
    assert "Logged in" in saved.stderr and api_key not in saved.stderr + saved.stdout

    path = tmp_path / "config" / "cortex" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    profile = json.loads(path.read_text())["profiles"]["default"]
    assert profile == {"url": gateway_url, "apiKey": api_key}

    listed = await cortex("jobs", "list", "--json")  # no CORTEX_* in its environment
    assert (listed.code, json.loads(listed.stdout)) == (0, [])

    # Loosened by hand, it is tightened again on the next save.
    path.chmod(0o644)
    again = await cortex("login", "--url", gateway_url, "--profile", "other", input=api_key)
    assert again.code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(json.loads(path.read_text())["profiles"]) == {"default", "other"}
    assert (await cortex("--profile", "other", "jobs", "list")).code == 0

    assert (await cortex("logout", "--profile", "other")).code == 0
    assert set(json.loads(path.read_text())["profiles"]) == {"default"}


async def test_a_refused_key_is_not_saved(tmp_path: Path, gateway_url: str) -> None:
    cortex = Cortex(tmp_path / "config")
    refused = await cortex("login", "--url", gateway_url, input="cgw_not-a-key-000000000000000\n")
    assert refused.code == 1
    assert refused.stderr.startswith("error: UNAUTHORIZED: ")
    assert not (tmp_path / "config" / "cortex" / "config.json").exists()


async def test_the_environment_wins_over_the_profile(
    tmp_path: Path, gateway_url: str, api_key: str
) -> None:
    cortex = Cortex(tmp_path / "config")
    assert (await cortex("login", "--url", gateway_url, input=api_key)).code == 0
    cortex.env["CORTEX_API_KEY"] = "cgw_another-key-000000000000000000"
    overridden = await cortex("jobs", "list")
    assert overridden.stderr.startswith("error: UNAUTHORIZED: ")
