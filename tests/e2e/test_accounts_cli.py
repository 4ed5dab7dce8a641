"""`cortex-gateway accounts` beside a running gateway: a limit set with the CLI is enforced
by the running process within seconds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from tests.e2e.test_gateway_process import Gateway, cli
from tests.factories import job_spec


def _until(check: object, seconds: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = check()  # type: ignore[operator]
        if response.status_code != 201 or time.monotonic() > deadline:
            return response  # type: ignore[no-any-return]
        time.sleep(0.3)


def test_limits_set_with_the_cli_are_enforced_by_a_running_gateway(
    database_url: str, tmp_path: Path
) -> None:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        CORTEX_DATA_DIR=str(tmp_path / "unused"),
        CORTEX_ENGINE_ENABLED="false",
    )
    gateway = Gateway(env, tmp_path / "gateway.log")
    try:
        gateway.wait_until_serving()
        created = cli(env, "keys", "create", "--name", "quota", "--account", "tenant")
        assert created.returncode == 0, created.stderr
        headers = {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}
        assert (
            httpx.post(f"{gateway.url}/jobs", json=job_spec(), headers=headers).status_code == 201
        )

        bad = cli(env, "accounts", "set", "tenant", "--max-active-jobs", "lots")
        assert bad.returncode == 2
        assert "--max-active-jobs" in bad.stderr
        assert cli(env, "accounts", "set", "tenant", "--providers", "nowhere").returncode == 2
        assert cli(env, "accounts", "set", "nobody", "--max-templates", "3").returncode == 1

        done = cli(env, "accounts", "set", "tenant", "--max-active-jobs", "1")
        assert done.returncode == 0, done.stderr
        refused = _until(
            lambda: httpx.post(f"{gateway.url}/jobs", json=job_spec(), headers=headers)
        )
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["code"] == "QUOTA_EXCEEDED"
        assert error["details"] == [{"quota": "max_active_jobs", "limit": 1, "current": 1}]
        listed = httpx.get(f"{gateway.url}/jobs", headers=headers).json()["data"]
        assert len(listed) == 1, "the refused job was not stored"

        shown = cli(env, "accounts", "show", "tenant")
        assert "max_active_jobs: 1 (override)" in shown.stdout
        account = httpx.get(f"{gateway.url}/account", headers=headers).json()["data"]
        quota = next(q for q in account["quotas"] if q["name"] == "max_active_jobs")
        assert quota == {"name": "max_active_jobs", "limit": 1, "current": 1}

        cli(env, "accounts", "set", "tenant", "--max-active-jobs", "0", "--providers", "akash")
        refused = _until(
            lambda: httpx.post(f"{gateway.url}/jobs", json=job_spec(), headers=headers)
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "PROVIDER_NOT_ALLOWED"
        assert "akash" in refused.json()["error"]["message"]

        cli(env, "accounts", "set", "tenant", "--providers", "default")
        deadline = time.monotonic() + 15
        while True:
            accepted = httpx.post(f"{gateway.url}/jobs", json=job_spec(), headers=headers)
            if accepted.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert accepted.status_code == 201
        assert "tenant" in cli(env, "accounts", "list").stdout
    finally:
        gateway.kill()
