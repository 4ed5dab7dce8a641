"""What a person sees in the dashboard, in headless Chromium, with real jobs on podman."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dashboard.conftest import (
    gateway_env,
    page_url,
    requests_sent,
    sign_in,
    text_of,
    texts_of,
    wait_until,
)
from tests.e2e.test_gateway_process import Gateway
from tests.engine.conftest import busybox
from tests.factories import API, Keys, seed_jobs

KEY_STORAGE = "cortex-gateway.api-key"


def submit(api: httpx.Client, script: str) -> str:
    response = api.post("/jobs", json=busybox(script))
    assert response.status_code == 201, response.text
    job_id: str = response.json()["data"]["id"]
    return job_id


def job_status(api: httpx.Client, job_id: str) -> str:
    status: str = api.get(f"/jobs/{job_id}").json()["data"]["status"]
    return status


def list_status(driver: WebDriver, job_id: str) -> str:
    return text_of(driver, f'#jobs-body tr[data-job-id="{job_id}"] .status')


def fill(driver: WebDriver, field: str, value: str) -> None:
    element = driver.find_element(By.ID, f"field-{field}")
    element.clear()
    element.send_keys(value)


def choose_provider(driver: WebDriver, name: str) -> None:
    """Picks a provider once the form has listed them (it asks GET /providers)."""
    option = f'#field-provider option[value="{name}"]'
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, option))
    Select(driver.find_element(By.ID, "field-provider")).select_by_value(name)


class TestSignIn:
    def test_a_bad_key_shows_the_apis_error_code_and_message(
        self, browser: WebDriver, gateway: Gateway
    ) -> None:
        browser.get(page_url(gateway))
        wait_until(browser, lambda d: d.find_element(By.ID, "key-input").is_displayed())
        browser.find_element(By.ID, "key-input").send_keys("cgw_not-a-key-of-this-gateway")
        browser.find_element(By.ID, "key-submit").click()

        error = wait_until(browser, lambda d: text_of(d, "#key-error"))
        assert "UNAUTHORIZED" in error
        assert "Invalid or revoked API key." in error
        assert browser.find_element(By.ID, "app-view").is_displayed() is False
        stored = browser.execute_script(f"return sessionStorage.getItem('{KEY_STORAGE}')")
        assert stored is None

    def test_the_key_stays_in_the_tab_out_of_urls_until_forgotten(
        self, browser: WebDriver, gateway: Gateway, api_key: str, api: httpx.Client
    ) -> None:
        job_id = submit(api, "echo hello")
        sign_in(browser, gateway, api_key, path="/dashboard")
        browser.get(page_url(gateway, f"/dashboard#/jobs/{job_id}"))
        browser.refresh()

        # After a reload the tab still holds the key, and the job's streams open with tokens.
        wait_until(browser, lambda d: "hello" in texts_of(d, "#logs .line .text"))
        assert browser.execute_script(f"return sessionStorage.getItem('{KEY_STORAGE}')") == api_key
        sent = requests_sent(browser)
        streams = [r["url"] for r in sent if "follow=true" in r["url"]]
        assert any(f"/jobs/{job_id}/logs?" in url and "token=" in url for url in streams)
        assert any("/jobs/events?" in url and "token=" in url for url in streams)
        assert not any(api_key in request["url"] for request in sent)
        assert api_key not in browser.current_url
        authorized = [r for r in sent if r["headers"].get("Authorization")]
        assert authorized and all("follow=true" not in r["url"] for r in authorized)

        browser.find_element(By.ID, "forget-key-button").click()
        wait_until(browser, lambda d: d.find_element(By.ID, "login-view").is_displayed())
        assert browser.execute_script(f"return sessionStorage.getItem('{KEY_STORAGE}')") is None
        assert not browser.find_element(By.ID, "app-view").is_displayed()

        # Signing in again, without a reload, gives one page again, not two stacked.
        browser.find_element(By.ID, "key-input").send_keys(api_key)
        browser.find_element(By.ID, "key-submit").click()
        wait_until(browser, lambda d: list_status(d, job_id) == "completed")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#status-filter .chip")) == 7
        assert len(rows(browser)) == 1


class TestJobView:
    def test_log_lines_appear_while_the_job_prints_and_the_status_changes_live(
        self, browser: WebDriver, gateway: Gateway, api_key: str, api: httpx.Client
    ) -> None:
        sign_in(browser, gateway, api_key)
        browser.find_element(By.ID, "new-job-button").click()
        choose_provider(browser, "local")
        fill(browser, "image", "busybox:latest")
        fill(browser, "memory", "64Mi")
        fill(
            browser,
            "command",
            "sh -c 'for i in 1 2 3 4 5 6 7 8; do echo \"tick $i <b>bold</b>\"; sleep 0.4; done'",
        )
        browser.find_element(By.ID, "submit-button").click()

        wait_until(browser, lambda d: "/jobs/job_" in d.current_url)
        job_id = browser.current_url.rpartition("/")[2]
        posts = [r for r in requests_sent(browser) if r["url"].endswith(f"{API}/jobs")]
        assert [r["method"] for r in posts] == ["POST"]
        assert posts[0]["headers"]["Idempotency-Key"].startswith("dashboard-")
        # The first line shows while the job is still running and printing.
        wait_until(
            browser, lambda d: texts_of(d, "#logs .line .text")[:1] == ["tick 1 <b>bold</b>"]
        )
        assert len(texts_of(browser, "#logs .line .text")) < 8
        # The job's status and its row in the list turn to running while it still prints.
        wait_until(browser, lambda d: text_of(d, "#job-status") == "running")
        wait_until(browser, lambda d: list_status(d, job_id) == "running")
        assert len(texts_of(browser, "#logs .line .text")) < 8

        # Then every line, once, in order; the status changes to completed without a reload.
        wait_until(browser, lambda d: text_of(d, "#job-status") == "completed")
        expected = [f"tick {i} <b>bold</b>" for i in range(1, 9)]
        assert texts_of(browser, "#logs .line .text") == expected
        # Printed as text: the line's markup made no element.
        assert browser.find_elements(By.CSS_SELECTOR, "#logs b") == []
        wait_until(browser, lambda d: list_status(d, job_id) == "completed")
        events = texts_of(browser, "#events .event-type")
        assert events == ["created", "scheduled", "started", "completed"]
        assert "Exit code\n0" in text_of(browser, "#job-facts")
        assert job_status(api, job_id) == "completed"

    def test_the_cancel_button_cancels_a_running_job(
        self, browser: WebDriver, gateway: Gateway, api_key: str, api: httpx.Client
    ) -> None:
        job_id = submit(api, "echo started; sleep 60")
        sign_in(browser, gateway, api_key, path=f"/#/jobs/{job_id}")
        wait_until(browser, lambda d: "started" in texts_of(d, "#logs .line .text"))
        wait_until(browser, lambda d: text_of(d, "#job-status") == "running")

        cancel = browser.find_element(By.ID, "cancel-button")
        cancel.click()
        assert cancel.text == "Confirm cancel"
        assert job_status(api, job_id) == "running", "the first click only arms the button"
        cancel.click()

        wait_until(browser, lambda d: text_of(d, "#job-status") == "cancelled")
        assert not browser.find_element(By.ID, "cancel-button").is_displayed()
        assert job_status(api, job_id) == "cancelled"
        wait_until(browser, lambda d: texts_of(d, "#events .event-type")[-1:] == ["cancelled"])
        wait_until(browser, lambda d: list_status(d, job_id) == "cancelled")
        wait_until(browser, lambda d: text_of(d, "#logs-state") == "ended")

    def test_a_job_of_no_one_says_so(
        self, browser: WebDriver, gateway: Gateway, api_key: str
    ) -> None:
        sign_in(browser, gateway, api_key, path="/#/jobs/job_0123456789abcdef")

        error = wait_until(browser, lambda d: text_of(d, "#job-error"))
        assert "JOB_NOT_FOUND" in error
        wait_until(browser, lambda d: text_of(d, "#job-status") == "not found")
        wait_until(browser, lambda d: text_of(d, "#logs-state") == "unavailable")
        wait_until(browser, lambda d: text_of(d, "#events-state") == "unavailable")

    def test_an_api_error_names_its_code_and_the_fields(
        self, browser: WebDriver, gateway: Gateway, api_key: str, api: httpx.Client
    ) -> None:
        sign_in(browser, gateway, api_key, path="/#/new")
        choose_provider(browser, "local")
        fill(browser, "image", "busybox:latest")
        fill(browser, "memory", "lots")
        fill(browser, "cpu", "0")
        browser.find_element(By.ID, "submit-button").click()

        error = wait_until(browser, lambda d: text_of(d, "#submit-error"))
        assert "VALIDATION_ERROR" in error
        assert "memory: 'lots' is not a quantity" in error
        assert "cpu:" in error
        invalid = browser.find_elements(By.CSS_SELECTOR, "#submit-form label.invalid input")
        assert {element.get_attribute("name") for element in invalid} == {"memory", "cpu"}
        assert api.get("/jobs").json()["meta"]["pagination"]["total"] == 0
        # This key may not read templates: the form goes without the picker.
        assert not browser.find_element(By.ID, "template-field").is_displayed()


def test_logs_and_statuses_carry_on_across_a_gateway_restart(
    browser: WebDriver, database_url: str, tmp_path: Path, api_key: str
) -> None:
    """The page reconnects by itself, with fresh stream tokens, and resumes after the last
    line it had: nothing lost, nothing twice."""
    env = gateway_env(database_url, tmp_path / "data")
    first = Gateway(env, tmp_path / "first.log")
    second = None
    try:
        first.wait_until_serving()
        api = httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {api_key}"})
        job_id = submit(api, "for i in $(seq 1 12); do echo line $i; sleep 0.5; done")
        sign_in(browser, first, api_key, path=f"/#/jobs/{job_id}")
        wait_until(browser, lambda d: len(texts_of(d, "#logs .line .text")) >= 2)

        assert first.interrupt() == 0
        wait_until(browser, lambda d: text_of(d, "#logs-state") == "reconnecting…")
        second = Gateway(env, tmp_path / "second.log", port=first.port)
        second.wait_until_serving()

        wait_until(browser, lambda d: text_of(d, "#job-status") == "completed")
        wait_until(browser, lambda d: text_of(d, "#logs-state") == "ended")
        assert texts_of(browser, "#logs .line .text") == [f"line {i}" for i in range(1, 13)]
        wait_until(browser, lambda d: text_of(d, "#live-label") == "Live")
        wait_until(browser, lambda d: list_status(d, job_id) == "completed")
        api.close()
    finally:
        first.kill()
        if second is not None:
            second.kill()


class TestTemplates:
    @pytest.fixture
    async def api_key(self, keys: Keys) -> str:
        scopes = ["jobs:read", "jobs:write", "templates:read", "templates:write"]
        return await keys.create(scope=scopes)

    def test_a_job_from_a_picked_template_with_a_changed_variable(
        self, browser: WebDriver, gateway: Gateway, api_key: str, api: httpx.Client
    ) -> None:
        config = busybox("echo from-template; echo $GREETING", env={"GREETING": "hi", "DROP": "x"})
        created = api.post(
            "/jobs/templates",
            json={"name": "greeter", "description": "Says hello", "config": config},
        )
        assert created.status_code == 201, created.text
        template_id = created.json()["data"]["id"]
        sign_in(browser, gateway, api_key, path="/#/new")

        wait_until(browser, lambda d: d.find_element(By.ID, "template-field").is_displayed())
        Select(browser.find_element(By.ID, "template-select")).select_by_visible_text("greeter")
        assert text_of(browser, "#template-description") == "Says hello"
        command = browser.find_element(By.ID, "field-command").get_attribute("value")
        assert command == "sh -c 'echo from-template; echo $GREETING'"
        fill(browser, "env", "GREETING=hello")
        browser.find_element(By.ID, "submit-button").click()

        wait_until(browser, lambda d: "/jobs/job_" in d.current_url)
        job_id = browser.current_url.rpartition("/")[2]
        wait_until(browser, lambda d: text_of(d, "#job-status") == "completed")
        assert texts_of(browser, "#logs .line .text") == ["from-template", "hello"]
        job = api.get(f"/jobs/{job_id}").json()["data"]
        assert job["templateId"] == template_id
        assert job["config"]["env"] == {"GREETING": "hello"}


class TestJobsList:
    def test_a_job_submitted_elsewhere_appears_and_its_status_changes_live(
        self, browser: WebDriver, gateway: Gateway, api_key: str, api: httpx.Client
    ) -> None:
        sign_in(browser, gateway, api_key)
        wait_until(browser, lambda d: text_of(d, "#live-label") == "Live")

        job_id = submit(api, "sleep 3")
        seen: list[str] = []

        def watch(driver: WebDriver) -> bool:
            status = list_status(driver, job_id)
            if status and status not in seen[-1:]:
                seen.append(status)
            return status == "completed"

        wait_until(browser, watch)
        assert "running" in seen and seen[-1] == "completed", seen
        assert seen.index("running") < seen.index("completed")

    def test_filters_and_pages(
        self,
        browser: WebDriver,
        gateway: Gateway,
        api_key: str,
        seeded: dict[str, list[str]],
    ) -> None:
        sign_in(browser, gateway, api_key)
        wait_until(browser, lambda d: text_of(d, "#jobs-total") == "15 jobs")
        Select(browser.find_element(By.ID, "limit-filter")).select_by_value("10")

        wait_until(browser, lambda d: len(texts_of(d, "#jobs-body tr")) == 10)
        first_page = [r.get_attribute("data-job-id") for r in rows(browser)]
        assert text_of(browser, "#page-label") == "Page 1 of 2"
        browser.find_element(By.ID, "page-next").click()
        wait_until(browser, lambda d: text_of(d, "#page-label") == "Page 2 of 2")
        second_page = [r.get_attribute("data-job-id") for r in rows(browser)]
        assert len(second_page) == 5
        assert set(first_page) | set(second_page) == set(seeded["all"])
        assert not browser.find_element(By.ID, "page-next").is_enabled()
        browser.find_element(By.ID, "page-prev").click()
        wait_until(browser, lambda d: text_of(d, "#page-label") == "Page 1 of 2")

        browser.find_element(By.CSS_SELECTOR, '.chip[data-status="failed"]').click()
        wait_until(browser, lambda d: text_of(d, "#jobs-total") == "5 jobs")
        assert set(texts_of(browser, "#jobs-body .status")) == {"failed"}
        Select(browser.find_element(By.ID, "provider-filter")).select_by_value("akash")
        wait_until(browser, lambda d: text_of(d, "#jobs-total") == "2 jobs")
        listed = {r.get_attribute("data-job-id") for r in rows(browser)}
        assert listed == set(seeded["akash_failed"])

        # Opening a job from the list shows it.
        rows(browser)[0].click()
        wait_until(browser, lambda d: text_of(d, "#job-id") in listed)
        wait_until(browser, lambda d: text_of(d, "#job-status") == "failed")


@pytest.fixture
async def seeded(db: AsyncEngine, api_key: str) -> dict[str, list[str]]:
    """15 finished jobs of the key's account: 10 completed and 3 failed on local, 2 failed on
    akash."""
    completed = await seed_jobs(db, "alpha", [{"status": "completed"}] * 10)
    failed = await seed_jobs(db, "alpha", [{"status": "failed"}] * 3)
    akash = await seed_jobs(db, "alpha", [{"status": "failed", "provider": "akash"}] * 2)
    return {"all": completed + failed + akash, "akash_failed": akash}


def rows(driver: WebDriver) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, "#jobs-body tr")


def test_command_lines_split_as_a_shell_quotes_them_and_overrides_are_merge_patches(
    browser: WebDriver, gateway: Gateway
) -> None:
    browser.get(page_url(gateway, "/dashboard"))
    wait_until(browser, lambda d: d.find_element(By.ID, "key-input").is_displayed())
    result = browser.execute_async_script(
        r"""
        const done = arguments[arguments.length - 1];
        import("/dashboard/static/js/submit-form.js").then((form) => done({
          words: form.splitWords(`sh -c 'echo "$HOME"; ls' a\\ b "x\\"y" ''`),
          unclosed: (() => {
            try { form.splitWords("echo 'oops"); } catch (e) { return e.message; }
          })(),
          overrides: form.changes(
            {provider: "local", image: "busybox", cpu: 500, command: ["sh"], env: {A: "1", B: "2"},
             ports: [{port: 80, expose: true, protocol: "tcp"}, {port: 9, expose: false}]},
            {provider: "local", image: "busybox", cpu: 1000, env: {A: "1", C: "3"},
             ports: [{port: 80, expose: true, protocol: "tcp"}]},
          ),
        })).catch((error) => done({error: String(error)}));
        """
    )
    assert "error" not in result, result
    assert result["words"] == ["sh", "-c", 'echo "$HOME"; ls', "a b", 'x"y', ""]
    assert result["unclosed"] == "a ' quote is not closed"
    assert result["overrides"] == {"cpu": 1000, "command": None, "env": {"B": None, "C": "3"}}


def test_the_page_loads_without_console_errors(browser: WebDriver, gateway: Gateway) -> None:
    """Everything the page uses is allowed by its Content-Security-Policy."""
    browser.get(page_url(gateway, "/dashboard"))
    wait_until(browser, lambda d: d.find_element(By.ID, "key-input").is_displayed())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
