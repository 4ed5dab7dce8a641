"""A gateway process for the contract tests: `cortex-gateway serve` on a loopback port over the
tests' database, with no engine and no webhook sender (what the API answers is under test,
not what jobs do), and a request rate no generated test can spend."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.factories import API, job_spec
from tests.servers import free_port

STARTUP_SECONDS = 60


@contextmanager
def serving(database_url: str, log: Path) -> Iterator[str]:
    """Run the gateway until the block ends; yields the API's base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CORTEX_ENGINE_ENABLED": "false",
        "CORTEX_WEBHOOKS_ENABLED": "false",
        "CORTEX_DEFAULT_RATE_LIMIT": "100000",
        "CORTEX_DEFAULT_RATE_BURST": "100000",
        "CORTEX_LOG_LEVEL": "warning",
        # Endpoints on loopback may be registered (nothing is sent: no webhook sender).
        "CORTEX_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    url = f"http://127.0.0.1:{port}{API}"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_serving(process, url, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gateway exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gateway did not start in {STARTUP_SECONDS}s:\n{log.read_text()}")


def seed(url: str, key: str) -> dict[str, str]:
    """One of each resource of the account behind `key` (a webhook endpoint subscribed to
    everything, then a job, whose creation gives the endpoint a delivery; a template; a
    batch), by their path parameters' names."""
    headers = {"Authorization": f"Bearer {key}"}

    def post(path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        response = httpx.post(f"{url}{path}", json=body, headers=headers, timeout=30)
        assert response.status_code == status, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    endpoint = post("/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["*"]})
    job = post("/jobs", job_spec())
    template = post("/jobs/templates", {"name": "seeded", "config": job_spec()})
    batch = post("/jobs/batch", {"jobs": [job_spec()]})
    # Ended, so that its streams (follow=true) end too.
    post(f"/jobs/{job['id']}/cancel", {}, status=200)
    deliveries = httpx.get(
        f"{url}/webhooks/{endpoint['id']}/deliveries", headers=headers, timeout=30
    ).json()["data"]
    return {
        "job_id": job["id"],
        "template_id": template["id"],
        "batch_id": batch["batchId"],
        "endpoint_id": endpoint["id"],
        "delivery_id": deliveries[0]["id"],
        "name": "local",
    }
