"""The dashboard in a real headless Chromium (Debian's), against a real gateway process
whose engine runs jobs on the container runtime."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.test_gateway_process import Gateway
from tests.factories import API, Keys

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
WAIT_SECONDS = 30
T = TypeVar("T")


@pytest.fixture(scope="session")
def browser_paths() -> dict[str, str]:
    """Chromium and chromedriver from Debian's packages, installed by scripts/browser if
    missing, and the library preloaded into Chromium (scripts/browser-shim/no_netlink.c).
    A machine where it cannot install them fails these tests, like one without a container
    runtime: a skip would hide a missing install step."""
    try:
        result = subprocess.run(
            [str(ROOT / "scripts" / "browser")],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"no headless Chromium here (scripts/browser failed: {exc})")
    return dict(
        line.removeprefix("export ").split("=", 1)
        for line in result.stdout.splitlines()
        if line.startswith("export ")
    )


def gateway_env(database_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        CORTEX_DATA_DIR=str(data_dir),
        CORTEX_ENGINE_POLL_INTERVAL="0.2",
        CORTEX_STREAM_HEARTBEAT="1",
    )
    env.update(settings)
    return env


@pytest.fixture(scope="module")
def gateway(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`cortex-gateway serve`, as the README starts it, on the tests' database."""
    tmp = tmp_path_factory.mktemp("dashboard")
    server = Gateway(gateway_env(database_url, tmp / "data"), tmp / "gateway.log")
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.kill()


def page_url(gateway: Gateway, path: str = "/") -> str:
    return gateway.url.removesuffix(API) + path


@pytest.fixture
async def api_key(keys: Keys) -> str:
    """A jobs:read + jobs:write key of the account 'alpha'."""
    return await keys.create()


@pytest.fixture
def api(gateway: Gateway, api_key: str) -> Iterator[httpx.Client]:
    """The same account, through the API, for what a test prepares or checks."""
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def browser(browser_paths: dict[str, str], request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = browser_paths["CORTEX_CHROMIUM"]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    options.add_argument(f"--user-data-dir={profile.name}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(
        executable_path=browser_paths["CORTEX_CHROMEDRIVER"],
        env={**os.environ, "LD_PRELOAD": browser_paths["CORTEX_CHROMIUM_PRELOAD"]},
    )
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            _keep_evidence(driver, request.node.name)
        driver.quit()
        profile.cleanup()


def _keep_evidence(driver: WebDriver, name: str) -> None:
    """A failed test leaves a screenshot and the page's console in the temp directory."""
    folder = Path(tempfile.gettempdir()) / "cortex-dashboard-failures"
    folder.mkdir(exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))
    console = "\n".join(str(entry) for entry in driver.get_log("browser"))
    (folder / f"{name}.console.txt").write_text(console)
    print(f"screenshot and console of the failed page: {folder / name}.*")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def wait_until(
    driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float = WAIT_SECONDS
) -> T:
    """What a person waits for: polls often, so short-lived states are seen."""
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition)


def text_of(driver: WebDriver, css: str) -> str:
    elements = driver.find_elements(By.CSS_SELECTOR, css)
    return elements[0].text if elements else ""


def texts_of(driver: WebDriver, css: str) -> list[str]:
    # A live page may re-render between finding the elements and reading them: read again.
    for _ in range(4):
        try:
            return [element.text for element in driver.find_elements(By.CSS_SELECTOR, css)]
        except StaleElementReferenceException:
            time.sleep(0.1)
    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, css)]


def click(driver: WebDriver, by: str, value: str) -> None:
    # As texts_of: the element found may be re-rendered before the click lands.
    for _ in range(4):
        try:
            driver.find_element(by, value).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    driver.find_element(by, value).click()


def requests_sent(driver: WebDriver) -> list[dict[str, Any]]:
    """The HTTP requests the page sent since the last call (url, method, headers), from
    Chromium's own network log."""
    sent = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            sent.append(message["params"]["request"])
    return sent


def sign_in(driver: WebDriver, gateway: Gateway, key: str, path: str = "/") -> None:
    """Opens the page and pastes the key, as a person does."""
    driver.get(page_url(gateway, path))
    wait_until(driver, lambda d: d.find_element(By.ID, "key-input").is_displayed())
    driver.find_element(By.ID, "key-input").send_keys(key)
    driver.find_element(By.ID, "key-submit").click()
    wait_until(driver, lambda d: d.find_element(By.ID, "app-view").is_displayed())


SCREENSHOTS = ROOT / "docs" / "screenshots"
SCREENSHOT_SIZE = (1280, 800)


def screenshot(driver: WebDriver, name: str, top: str | None = None) -> Path:
    """Pictures of the product for the README: `docs/screenshots/<name>.png`, always at the
    same size and scrolled the same way (to the top, or to the element `top` selects), so a
    rerun changes only what the page shows (ids, times). Written by the tests that show each
    page, after what they assert is on screen."""
    width, height = SCREENSHOT_SIZE
    driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.execute_script(
        """window.scrollTo(0, 0);
        document.activeElement?.blur();
        if (arguments[0]) {
          const element = document.querySelector(arguments[0]);
          window.scrollTo(0, element.getBoundingClientRect().top - 64);
        }""",
        top,
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path
