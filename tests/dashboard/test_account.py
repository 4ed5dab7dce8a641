"""The account page: what a person sees of the account's limits, use and budget."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.dashboard.conftest import (
    gateway_env,
    screenshot,
    sign_in,
    text_of,
    texts_of,
    wait_until,
)
from tests.e2e.test_gateway_process import Gateway, cli
from tests.engine.conftest import busybox


def quota_use(driver: WebDriver, name: str) -> str:
    return text_of(driver, f'#account-quotas li[data-quota="{name}"] .quota-use')


def wait_for_limit(api: httpx.Client, name: str, limit: int) -> None:
    """Until the gateway process has heard of the override (it is told within seconds)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        quotas = api.get("/account").json()["data"]["quotas"]
        if any(q["name"] == name and q["limit"] == limit for q in quotas):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never became {limit}")


def test_the_account_page_shows_quotas_in_use_budget_and_providers(
    browser: WebDriver, gateway: Gateway, api: httpx.Client, api_key: str, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    env = gateway_env(database_url, tmp_path / "unused")
    done = cli(
        env, "accounts", "set", "alpha", "--max-active-jobs", "5",
        "--budget-usd", "20", "--budget-period", "month", "--providers", "local,akash",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for_limit(api, "max_active_jobs", 5)
    response = api.post("/jobs", json=busybox("sleep 60", duration=120))
    assert response.status_code == 201, response.text
    job_id = response.json()["data"]["id"]

    sign_in(browser, gateway, api_key)
    browser.find_element(By.ID, "account-link").click()
    wait_until(browser, lambda d: quota_use(d, "max_active_jobs") == "1 / 5")
    assert browser.find_element(By.ID, "account-view").is_displayed()
    assert text_of(browser, "#account-name") == "alpha"
    labels = texts_of(browser, "#account-quotas .quota-name")
    assert labels[0] == "Active jobs" and "Templates" in labels
    bar = browser.find_element(By.CSS_SELECTOR, 'li[data-quota="max_active_jobs"] progress')
    assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("1", "5")
    budget = text_of(browser, "#account-budget-line")
    assert budget.startswith("$0.00 spent of $20.00 per month"), budget
    assert budget.endswith("$20.00 left")
    facts = dict(
        zip(
            texts_of(browser, "#account-facts dt"),
            texts_of(browser, "#account-facts dd"),
            strict=True,
        )
    )
    assert facts["Providers"] == "akash, local"
    assert facts["Engine slots"] == "its fair share"
    screenshot(browser, "account")

    # The job ending frees its place: the page, open meanwhile, shows it.
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 200
    wait_until(browser, lambda d: quota_use(d, "max_active_jobs") == "0 / 5", timeout=60)

    browser.find_element(By.ID, "account-close").click()
    wait_until(browser, lambda d: not d.find_element(By.ID, "account-view").is_displayed())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
