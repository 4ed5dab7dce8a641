"""A page on another origin follows a job's logs with `EventSource` and a stream token, in
headless Chromium: every line for an origin CORTEX_CORS_ORIGINS lists, nothing for another."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.dashboard.conftest import gateway_env, wait_until
from tests.e2e.test_gateway_process import Gateway
from tests.engine.conftest import busybox
from tests.servers import free_port

# Opens the stream given in its URL and keeps what arrives where the test can read it.
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>partner page</title></head><body><script>
window.lines = []; window.ended = null; window.failed = false;
const source = new EventSource(new URLSearchParams(location.search).get("stream"));
source.onmessage = (event) => window.lines.push(JSON.parse(event.data).line);
source.addEventListener("end", (event) => {
  window.ended = JSON.parse(event.data).status;
  source.close();
});
source.onerror = () => { if (source.readyState === EventSource.CLOSED) window.failed = true; };
</script></body></html>"""
LINES = 25


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_page(port: int) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def allowed_page() -> Iterator[str]:
    yield from serve_page(free_port())


@pytest.fixture(scope="module")
def other_page() -> Iterator[str]:
    yield from serve_page(free_port())


@pytest.fixture(scope="module")
def cors_gateway(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, allowed_page: str
) -> Iterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("cors")
    env = gateway_env(database_url, tmp / "data", CORTEX_CORS_ORIGINS=allowed_page)
    server = Gateway(env, tmp / "gateway.log")
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.kill()


@pytest.fixture
def api(cors_gateway: Gateway, api_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=cors_gateway.url, headers=headers, timeout=30) as client:
        yield client


def stream_url(gateway: Gateway, api: httpx.Client, job_id: str) -> str:
    issued = api.post(f"/jobs/{job_id}/stream-token")
    assert issued.status_code == 201, issued.text
    token = issued.json()["data"]["token"]
    return f"{gateway.url}/jobs/{job_id}/logs?" + urlencode({"follow": "true", "token": token})


def open_page(browser: WebDriver, page: str, stream: str) -> None:
    browser.get(f"{page}/?" + urlencode({"stream": stream}))


def test_an_allowed_origin_receives_every_line_live(
    browser: WebDriver, cors_gateway: Gateway, api: httpx.Client, allowed_page: str
) -> None:
    script = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.05; done"
    created = api.post("/jobs", json=busybox(script))
    assert created.status_code == 201, created.text
    job_id = created.json()["data"]["id"]

    open_page(browser, allowed_page, stream_url(cors_gateway, api, job_id))
    wait_until(browser, lambda d: d.execute_script("return window.ended || window.failed"), 90)

    assert browser.execute_script("return window.failed") is False
    assert browser.execute_script("return window.ended") == "completed"
    expected = [f"line {i}" for i in range(1, LINES + 1)]
    assert browser.execute_script("return window.lines") == expected


def test_another_origin_is_refused(
    browser: WebDriver, cors_gateway: Gateway, api: httpx.Client, other_page: str
) -> None:
    created = api.post("/jobs", json=busybox("echo secret line"))
    job_id = created.json()["data"]["id"]
    stream = stream_url(cors_gateway, api, job_id)
    # The same URL works for a client CORS does not bind: the refusal is the browser's.
    with httpx.Client(timeout=60) as plain, plain.stream("GET", stream) as response:
        assert response.status_code == 200
        assert "secret line" in response.read().decode()

    open_page(browser, other_page, stream)
    wait_until(browser, lambda d: d.execute_script("return window.failed"), 30)

    assert browser.execute_script("return window.lines") == []
    assert browser.execute_script("return window.ended") is None
