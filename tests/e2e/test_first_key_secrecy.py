"""The first admin key is never a structured log line; it can go to a 0600 file instead."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.e2e.test_gateway_process import KEY, Gateway, embedded_env  # noqa: F401


def test_with_json_logs_and_no_terminal_every_line_is_json_and_the_key_is_in_a_0600_file(
    embedded_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    gateway = Gateway({**embedded_env, "CORTEX_LOG_FORMAT": "json"}, tmp_path / "out.log")
    try:
        output = gateway.wait_until_serving()
    finally:
        gateway.interrupt()
    messages = [json.loads(line)["message"] for line in output.splitlines() if line.strip()]
    assert not any(KEY.search(message) for message in messages)
    key_file = Path(embedded_env["CORTEX_DATA_DIR"]) / "first-admin-key"
    assert any(str(key_file) in message for message in messages), "the log says where it is"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert KEY.fullmatch(key_file.read_text().strip())


def test_the_key_file_is_0600_and_the_key_is_not_printed(
    embedded_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "admin.key"
    env = {**embedded_env, "CORTEX_ADMIN_KEY_FILE": str(key_file)}
    gateway = Gateway(env, tmp_path / "out.log")
    try:
        output = gateway.wait_until_serving()
    finally:
        gateway.interrupt()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert KEY.fullmatch(key_file.read_text().strip())
    assert not KEY.search(output)
