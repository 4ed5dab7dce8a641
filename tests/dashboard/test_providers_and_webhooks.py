"""The providers page (health, capabilities, a quote per provider) and the webhooks page (a
delivery that failed, retried from the page, then succeeded), against a gateway whose local
runtime has a price and whose Render is a faithful fake on a loopback port."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys as Key
from selenium.webdriver.remote.webdriver import WebDriver

from tests.dashboard.conftest import (
    gateway_env,
    screenshot,
    sign_in,
    text_of,
    texts_of,
    wait_until,
)
from tests.e2e.test_gateway_process import Gateway
from tests.factories import Keys
from tests.servers import free_port

WEBHOOK_SCOPES = ("jobs:read", "jobs:write", "webhooks:read", "webhooks:write")
GPU = "NVIDIA RTX 4090"


@pytest.fixture(scope="module")
def render_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """tests/fakes/render.py, run alone as its docstring says."""
    port = free_port()
    log = (tmp_path_factory.mktemp("render") / "render.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.render", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the Render fake exited"
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the Render fake did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.kill()
        process.wait()
        log.close()


@pytest.fixture(scope="module")
def gateway(
    database_url: str, render_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("pages")
    env = gateway_env(
        database_url,
        tmp / "data",
        CORTEX_LOCAL_USD_PER_CPU_HOUR="0.05",
        CORTEX_RENDER_API_URL=render_url,
        CORTEX_RENDER_PUBLIC_KEY="pk_test",
        CORTEX_RENDER_SECRET_KEY="sk_test",
        CORTEX_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        # A failed delivery waits for its retry: the page's "Retry now" is what sends it.
        CORTEX_WEBHOOK_RETRY_SCHEDULE="3600,3600",
    )
    server = Gateway(env, tmp / "gateway.log")
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.kill()


def quote_rows(driver: WebDriver) -> dict[str, tuple[str, str, str]]:
    """provider -> (verdict, USD/hour, for the duration), as the quote table shows them."""
    rows = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#quote-body tr"):
        cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        rows[cells[0]] = (cells[1], cells[2], cells[3])
    return rows


def set_field(driver: WebDriver, element_id: str, value: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def test_the_providers_page_shows_health_and_prices_a_spec_on_every_provider(
    browser: WebDriver, gateway: Gateway, api_key: str
) -> None:
    sign_in(browser, gateway, api_key)
    # From the keyboard: Enter on the page's link in the top bar.
    browser.find_element(By.ID, "nav-providers").send_keys(Key.ENTER)
    card = '#provider-cards .provider-card[data-provider="{}"]'
    wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".provider-card")) == 4)
    health = {
        name: text_of(browser, f"{card.format(name)} .health")
        for name in ["akash", "golem", "local", "render"]
    }
    assert health == {
        "akash": "not configured",
        "golem": "not configured",
        "local": "healthy",
        "render": "healthy",
    }
    assert "CORTEX_AKASH_API_KEY" in text_of(browser, f"{card.format('akash')} .health-reason")
    local_caps = text_of(browser, f"{card.format('local')} .capabilities")
    assert "GPUs\nno" in local_caps

    # Two CPUs for two hours, no GPU: local is cheapest, render could (on a GPU node), golem
    # needs a command, akash has no key.
    set_field(browser, "quote-cpu", "2000")
    set_field(browser, "quote-duration", "7200")
    browser.find_element(By.ID, "quote-button").click()
    wait_until(browser, lambda d: len(quote_rows(d)) == 4)
    assert quote_rows(browser) == {
        "local": ("cheapest: auto picks it", "$0.10", "$0.20"),
        "render": ("can run it", "$0.31", "$0.62"),
        "akash": ("unavailable", "—", "—"),
        "golem": ("cannot run it", "—", "—"),
    }
    why = text_of(browser, '#quote-body tr[data-provider="golem"] .why')
    assert why.count("give the command to run") == 1, why
    assert "local" in text_of(browser, "#quote-summary")

    # One GPU of a model render has: render prices it, local cannot run it.
    set_field(browser, "quote-gpu-count", "1")
    set_field(browser, "quote-gpu-model", GPU + Key.ENTER)  # Enter in a field sends the form
    wait_until(
        browser, lambda d: quote_rows(d).get("render", ("",))[0] == "cheapest: auto picks it"
    )
    rows = quote_rows(browser)
    assert rows["render"][1:] == ("$0.35", "$0.70")
    assert rows["local"][0] == "cannot run it"
    assert "local cannot provide GPUs" in text_of(browser, '#quote-body tr[data-provider="local"]')
    screenshot(browser, "providers", top="#quote-form")

    # A spec the API refuses shows its error, field by field.
    set_field(browser, "quote-memory", "lots")
    browser.find_element(By.ID, "quote-button").click()
    error = wait_until(browser, lambda d: text_of(d, "#quote-error"))
    assert "VALIDATION_ERROR" in error and "memory" in error
    assert not browser.find_element(By.ID, "quote-result").is_displayed()


class FailsOnce(BaseHTTPRequestHandler):
    """A partner's receiver: the first request gets a 500, every later one a 200."""

    received: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        FailsOnce.received.append(self.headers.get("webhook-id", ""))
        failing = len(FailsOnce.received) == 1
        self.send_response(500 if failing else 200)
        self.end_headers()
        self.wfile.write(b"try later" if failing else b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    FailsOnce.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailsOnce)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def webhooks_key(keys: Keys) -> str:
    return await keys.create(scope=WEBHOOK_SCOPES)


def delivery_cell(driver: WebDriver, css: str) -> str:
    return text_of(driver, f"#deliveries-body tr {css}")


def test_the_webhooks_page_test_fires_an_endpoint_and_retries_a_failed_delivery(
    browser: WebDriver, gateway: Gateway, webhooks_key: str, receiver: str
) -> None:
    headers = {"Authorization": f"Bearer {webhooks_key}"}
    created = httpx.post(
        f"{gateway.url}/webhooks",
        json={"url": receiver, "events": ["job.completed"], "description": "partner"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["data"]["id"]

    sign_in(browser, gateway, webhooks_key)
    browser.find_element(By.ID, "nav-webhooks").click()
    row = f'#endpoints-body tr[data-endpoint-id="{endpoint_id}"]'
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row))
    assert texts_of(browser, f"{row} td")[:3] == [f"{receiver}\npartner", "job.completed", "active"]
    wait_until(browser, lambda d: d.find_element(By.ID, "deliveries-empty").is_displayed())

    # Test-fire: the receiver answers 500, and the page shows the delivery waiting to retry.
    browser.find_element(By.CSS_SELECTOR, f'{row} button[data-action="test"]').click()
    wait_until(browser, lambda d: delivery_cell(d, ".attempt-count") == "1", timeout=60)
    assert delivery_cell(browser, ".delivery-status") == "pending"
    assert delivery_cell(browser, ".response").startswith("HTTP 500")
    assert len(FailsOnce.received) == 1

    # Retry now: sent again at once, the same delivery (same webhook-id) succeeds.
    browser.find_element(By.CSS_SELECTOR, '#deliveries-body button[data-action="retry"]').click()
    wait_until(browser, lambda d: delivery_cell(d, ".delivery-status") == "succeeded", timeout=60)
    assert delivery_cell(browser, ".attempts") == "2 (500 → 200)"
    assert delivery_cell(browser, ".response").startswith("HTTP 200")
    assert not browser.find_elements(
        By.CSS_SELECTOR, '#deliveries-body button[data-action="retry"]'
    )
    assert FailsOnce.received[0] == FailsOnce.received[1]
    listed = httpx.get(f"{gateway.url}/webhooks/{endpoint_id}/deliveries", headers=headers)
    delivery = listed.json()["data"][0]
    assert (delivery["status"], len(delivery["attempts"])) == ("succeeded", 2)
    assert delivery_cell(browser, "td:first-child") == delivery["id"]
    screenshot(browser, "webhooks")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_a_key_without_the_webhooks_scopes_is_told_why(
    browser: WebDriver, gateway: Gateway, api_key: str
) -> None:
    sign_in(browser, gateway, api_key)
    browser.find_element(By.ID, "nav-webhooks").click()

    error = wait_until(browser, lambda d: text_of(d, "#webhooks-error"))
    assert "FORBIDDEN" in error
    # The rest of the dashboard works on: the jobs list is a click away.
    browser.find_element(By.ID, "nav-jobs").click()
    wait_until(browser, lambda d: d.find_element(By.ID, "jobs-layout").is_displayed())
    assert not browser.find_element(By.ID, "webhooks-page").is_displayed()
