"""The batches pages: a batch in the list, then its own page with each job's status as the
jobs run, on podman, at most `concurrency` at a time."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.dashboard.conftest import click, screenshot, sign_in, text_of, texts_of, wait_until
from tests.e2e.test_gateway_process import Gateway
from tests.engine.conftest import busybox

SCRIPTS = ["echo one", "sleep 2; echo two", "echo three; exit 3", "sleep 1; echo four"]


def row_statuses(driver: WebDriver) -> list[str]:
    return texts_of(driver, "#batch-jobs-body tr .status")


def test_a_batchs_page_shows_each_job_and_its_status_as_they_run(
    browser: WebDriver, gateway: Gateway, api: httpx.Client, api_key: str
) -> None:
    response = api.post(
        "/jobs/batch", json={"jobs": [busybox(s) for s in SCRIPTS], "concurrency": 2}
    )
    assert response.status_code == 201, response.text
    batch_id = response.json()["data"]["batchId"]
    job_ids = response.json()["data"]["jobIds"]

    sign_in(browser, gateway, api_key)
    browser.find_element(By.ID, "nav-batches").click()
    link = f'#batches-body tr[data-batch-id="{batch_id}"] a'
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, link))
    assert not browser.find_element(By.ID, "jobs-layout").is_displayed()
    assert "current" in (browser.find_element(By.ID, "nav-batches").get_attribute("class") or "")
    browser.find_element(By.CSS_SELECTOR, link).click()

    wait_until(browser, lambda d: text_of(d, "#batch-id") == batch_id)
    # The jobs in the order they were submitted, each with its status, until all have ended.
    wait_until(browser, lambda d: texts_of(d, "#batch-jobs-body tr td:nth-child(2) a") == job_ids)
    wait_until(
        browser,
        lambda d: row_statuses(d) == ["completed", "completed", "failed", "completed"],
        timeout=90,
    )
    assert text_of(browser, "#batch-done") == "4 of 4 jobs"
    assert text_of(browser, "#batch-status") == "finished"
    counts = dict(
        zip(
            texts_of(browser, "#batch-counts li .status"),
            texts_of(browser, "#batch-counts li .mono"),
            strict=True,
        )
    )
    assert counts == {"completed": "3", "failed": "1"}
    statuses = [api.get(f"/jobs/{job_id}").json()["data"]["status"] for job_id in job_ids]
    assert statuses == row_statuses(browser)
    screenshot(browser, "batch")

    # A job's row opens the job.
    click(browser, By.CSS_SELECTOR, f'#batch-jobs-body tr[data-job-id="{job_ids[0]}"] a')
    wait_until(browser, lambda d: text_of(d, "#job-id") == job_ids[0])
    assert browser.find_element(By.ID, "jobs-layout").is_displayed()
    assert not browser.find_element(By.ID, "batches-page").is_displayed()
    # And the job links back to its batch.
    wait_until(browser, lambda d: text_of(d, "#job-batch") == batch_id)
    click(browser, By.ID, "job-batch")
    wait_until(browser, lambda d: text_of(d, "#batch-id") == batch_id)
    assert browser.find_element(By.ID, "batch-view").is_displayed()
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_a_batch_is_cancelled_from_its_page_with_two_clicks(
    browser: WebDriver, gateway: Gateway, api: httpx.Client, api_key: str
) -> None:
    response = api.post("/jobs/batch", json={"jobs": [busybox("sleep 60")] * 3, "concurrency": 1})
    assert response.status_code == 201, response.text
    batch_id = response.json()["data"]["batchId"]

    sign_in(browser, gateway, api_key, path=f"/#/batches/{batch_id}")
    wait_until(browser, lambda d: "running" in row_statuses(d))
    cancel = browser.find_element(By.ID, "batch-cancel")
    cancel.click()
    assert cancel.text == "Confirm cancel"
    assert api.get(f"/jobs/batch/{batch_id}").json()["data"]["status"] == "active"
    cancel.click()

    wait_until(browser, lambda d: row_statuses(d) == ["cancelled"] * 3, timeout=60)
    assert text_of(browser, "#batch-status") == "cancelled"
    assert not browser.find_element(By.ID, "batch-cancel").is_displayed()
    assert api.get(f"/jobs/batch/{batch_id}").json()["data"]["status"] == "cancelled"
