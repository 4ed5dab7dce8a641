"""A job's page draws its CPU, memory and network over time from GET /jobs/{id}/metrics, one
point per sample the API returns, and keeps drawing while the job runs; with its cost."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from app import database
from app.engine import repository
from providers.types import MetricSample
from tests.dashboard.conftest import (
    gateway_env,
    page_url,
    screenshot,
    sign_in,
    text_of,
    wait_until,
)
from tests.e2e.test_gateway_process import Gateway
from tests.engine.conftest import busybox

KIB = 1024


@pytest.fixture(scope="module")
def gateway(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose local jobs cost something, so a job's cost moves."""
    tmp = tmp_path_factory.mktemp("charts")
    env = gateway_env(database_url, tmp / "data", CORTEX_LOCAL_USD_PER_CPU_HOUR="0.9")
    server = Gateway(env, tmp / "gateway.log")
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.kill()


def api_points(api: httpx.Client, job_id: str) -> dict[str, int]:
    """How many points each series has, as the page asks for them (the last hour by minute)."""
    response = api.get(f"/jobs/{job_id}/metrics", params={"period": "1h", "resolution": "1m"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return {
        "cpu": len(data["cpu"]),
        "memory": len(data["memory"]),
        "rx": len(data["network"]["rx"]),
        "tx": len(data["network"]["tx"]),
    }


DRAWN = """
const drawn = {};
const charts = [["cpu", "cpu"], ["memory", "memory"], ["network", "rx"], ["network", "tx"]];
for (const [chart, series] of charts) {
  const group = document.querySelector(`#chart-${chart} .series-${series}`);
  const line = group?.querySelector("path.line")?.getAttribute("d") ?? "";
  const dots = group?.querySelectorAll("circle.dot").length ?? 0;
  drawn[series] = [(line.match(/[ML]/g) ?? []).length, dots];
}
return drawn;
"""


def drawn_points(driver: WebDriver) -> dict[str, int]:
    """The vertices of each series' line, read at one instant; each has its dot too."""
    drawn = driver.execute_script(DRAWN)
    for series, (vertices, dots) in drawn.items():
        assert vertices == dots, (series, vertices, dots)
    return {series: vertices for series, (vertices, _) in drawn.items()}


def add_samples(database_url: str, job_id: str, minutes_ago: list[int]) -> None:
    """Samples as the engine stores them, one in each of these past minutes."""
    asyncio.run(_add_samples(database_url, job_id, minutes_ago))


async def _add_samples(database_url: str, job_id: str, minutes_ago: list[int]) -> None:
    now = datetime.now(UTC)
    db = database.create_engine(database_url, pool_size=1)
    async with database.transaction(db) as connection:
        for minutes in minutes_ago:
            await repository.add_metric(
                connection,
                job_id,
                # No network counters: the engine's, from the container's start, follow.
                MetricSample(
                    timestamp=now - timedelta(minutes=minutes),
                    cpu_millicores=12.0 + 9 * (minutes % 5) + minutes,
                    memory_bytes=(300 + 25 * (minutes % 7)) * KIB,
                ),
            )
    await db.dispose()


def test_a_running_jobs_charts_show_each_sample_and_grow_while_it_runs(
    browser: WebDriver, gateway: Gateway, api: httpx.Client, api_key: str, database_url: str
) -> None:
    response = api.post("/jobs", json=busybox("echo started; sleep 120", duration=180))
    assert response.status_code == 201, response.text
    job_id = response.json()["data"]["id"]
    deadline = time.monotonic() + 60
    while api.get(f"/jobs/{job_id}").json()["data"]["status"] != "running":
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(0.2)
    # The minutes before it: as if it had run for a while (the engine adds its own samples).
    add_samples(database_url, job_id, list(range(12, 2, -1)))

    sign_in(browser, gateway, api_key, path=f"/#/jobs/{job_id}")
    wait_until(browser, lambda d: drawn_points(d)["cpu"] >= 10)
    wait_until(browser, lambda d: drawn_points(d) == api_points(api, job_id))
    assert drawn_points(browser)["memory"] >= 10
    label = browser.find_element(By.CSS_SELECTOR, "#chart-cpu svg").get_attribute("aria-label")
    assert label.startswith("CPU over time,") and "samples" in label
    assert text_of(browser, "#chart-memory figcaption").startswith("Memory")
    # 500 millicores for 180 s at 0.9 USD per CPU-hour.
    cost = text_of(browser, "#job-cost-line")
    assert re.fullmatch(r"\$0\.0\d+ so far of \$0\.02 projected", cost), cost
    # No progress reported: no bar, no message.
    assert not browser.find_element(By.ID, "job-progress").is_displayed()
    assert not browser.find_element(By.ID, "job-status-message").is_displayed()

    # A sample in a minute not drawn yet: the open page draws it without a reload.
    before = api_points(api, job_id)["cpu"]
    add_samples(database_url, job_id, [13])
    assert api_points(api, job_id)["cpu"] > before
    wait_until(browser, lambda d: drawn_points(d)["cpu"] > before)
    wait_until(browser, lambda d: drawn_points(d) == api_points(api, job_id))
    screenshot(browser, "job-charts", top="#job-facts")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 200
    # Once it has ended, the charts are read a last time and say so.
    wait_until(browser, lambda d: text_of(d, "#metrics-note").endswith("; final"), timeout=60)
    assert drawn_points(browser) == api_points(api, job_id)


RENDER_PROGRESS = """
const done = arguments[arguments.length - 1];
import("/dashboard/static/js/job-insights.js").then(({ JobInsights }) => {
  const view = new JobInsights();
  // The page asks for metrics on the first render: an API with no samples.
  const none = { cpu: [], memory: [], network: { rx: [], tx: [] } };
  view.api = { request: async () => ({ data: none }) };
  const seen = () => ({
    progressShown: !document.getElementById("job-progress").hidden,
    bar: document.getElementById("job-progress-bar").value,
    percent: document.getElementById("job-progress-value").textContent,
    messageShown: !document.getElementById("job-status-message").hidden,
    message: document.getElementById("job-status-message").textContent,
    cost: document.getElementById("job-cost-line").textContent,
  });
  const job = {
    id: "job_0000000000000000", status: "running", createdAt: new Date().toISOString(),
    startedAt: new Date().toISOString(), endedAt: null,
    cost: { current: 0.25, projected: 1.5, currency: "USD" },
  };
  view.open();
  view.render({ ...job, progress: 42.5, statusMessage: "epoch 3 of 8" });
  const reported = seen();
  view.render({ ...job, progress: null, statusMessage: null });
  const cleared = seen();
  view.render(job);
  const absent = seen();
  view.close();
  done({ reported, cleared, absent });
});
"""


def test_progress_and_status_message_show_only_when_the_job_reports_them(
    browser: WebDriver, gateway: Gateway
) -> None:
    """The job's `progress` (0-100) and `statusMessage`, as GET /jobs/{id} gives them once a
    job reports them; a job without them (or with null) shows neither."""
    browser.get(page_url(gateway, "/dashboard"))
    wait_until(browser, lambda d: d.find_element(By.ID, "key-input").is_displayed())

    seen = browser.execute_async_script(RENDER_PROGRESS)

    assert seen["reported"] == {
        "progressShown": True,
        "bar": 42.5,
        "percent": "42.5 %",
        "messageShown": True,
        "message": "epoch 3 of 8",
        "cost": "$0.25 so far of $1.50 projected",
    }
    for state in ("cleared", "absent"):
        assert (seen[state]["progressShown"], seen[state]["messageShown"]) == (False, False)
