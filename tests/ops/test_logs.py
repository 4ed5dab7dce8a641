"""`CORTEX_LOG_FORMAT=json`: `cortex-gateway serve` writes one JSON object per line, and the
lines of a request and of a job's driving carry their ids. X-Request-ID is echoed."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.observability import logs
from tests.factories import API, job_spec
from tests.servers import free_port

STARTUP_SECONDS = 60
KEY = re.compile(r"cgw_[A-Za-z0-9_-]{20,}")


class JsonGateway:
    """`cortex-gateway serve` with JSON logs; its output (stdout and stderr) in a file."""

    def __init__(self, database_url: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CORTEX_LOG_FORMAT": "json",
            # Without a terminal, JSON logs leave the first key in a 0600 file here.
            "CORTEX_DATA_DIR": str(log.parent / "data"),
            "CORTEX_ENGINE_POLL_INTERVAL": "0.2",
        }
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve", "--port", str(self.port)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"exited early:\n{self.log.read_text()}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def lines(self) -> list[dict[str, Any]]:
        """Every line of the output, each parsed as JSON (fails on any line that is not)."""
        parsed = []
        for line in self.log.read_text().splitlines():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"not a JSON line: {line!r}") from None
        return parsed


@pytest.fixture
def gateway(database_url: str, tmp_path: Path) -> Iterator[JsonGateway]:
    gateway = JsonGateway(database_url, tmp_path / "gateway.log")
    try:
        gateway.wait_until_serving()
        yield gateway
    finally:
        gateway.stop()


def first_key(gateway: JsonGateway) -> str:
    """The first admin key: in its file, and in no log line (the log only says where)."""
    assert not any(KEY.search(entry["message"]) for entry in gateway.lines())
    found = KEY.fullmatch((gateway.log.parent / "data" / "first-admin-key").read_text().strip())
    assert found, "the first API key was not written to its file"
    return found.group(0)


class TestJsonLogs:
    def test_every_line_is_json_with_request_and_job_ids(self, gateway: JsonGateway) -> None:
        key = first_key(gateway)
        auth = {"Authorization": f"Bearer {key}"}
        spec = job_spec(command=["sh", "-c", "echo hi"])
        created = httpx.post(
            f"{gateway.url}{API}/jobs", json=spec, headers={**auth, "X-Request-ID": "req-ops-1"}
        )
        assert created.status_code == 201, created.text
        assert created.headers["X-Request-ID"] == "req-ops-1"
        job_id = created.json()["data"]["id"]
        deadline = time.monotonic() + 60
        while True:
            job = httpx.get(f"{gateway.url}{API}/jobs/{job_id}", headers=auth).json()["data"]
            if job["status"] == "completed" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert job["status"] == "completed", job
        gateway.stop()

        entries = gateway.lines()
        for entry in entries:
            assert {"time", "level", "logger", "message"} <= set(entry), entry
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
        requests = [e for e in entries if e.get("request_id") == "req-ops-1"]
        assert any(e["logger"] == "uvicorn.access" and "POST" in e["message"] for e in requests)
        # The engine's task for the job logs its calls to the container runtime.
        assert any(e.get("job_id") == job_id and e["logger"] != "uvicorn.access" for e in entries)
        reads = [e for e in entries if f"/jobs/{job_id}" in e["message"]]
        assert reads and all(e.get("job_id") == job_id for e in reads)
        assert any(e["message"].startswith("Serving the API at") for e in entries)

    def test_a_request_id_is_made_when_none_or_a_bad_one_is_sent(
        self, gateway: JsonGateway
    ) -> None:
        made = httpx.get(f"{gateway.url}/healthz").headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        for bad in ("two words", "x" * 200, '{"forged": 1}'):
            answered = httpx.get(f"{gateway.url}/healthz", headers={"X-Request-ID": bad})
            assert re.fullmatch(r"[0-9a-f]{32}", answered.headers["X-Request-ID"]), bad
        gateway.stop()
        assert any(e.get("request_id") == made for e in gateway.lines())


class TestJsonFormatter:
    def test_an_exception_stays_on_one_line(self) -> None:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            record = logging.LogRecord(
                "app.x", logging.ERROR, __file__, 1, "failed %s", ("here",), None
            )
            record.exc_info = sys.exc_info()
        line = logs.JsonFormatter().format(record)
        assert "\n" not in line
        entry = json.loads(line)
        assert entry["message"] == "failed here"
        assert entry["level"] == "error"
        assert "ValueError: boom" in entry["exception"]
