"""deploy/: the Grafana dashboard and the Prometheus alert rules use only what /metrics exports.

Every metric name (and every label a selector matches on) in their PromQL must be in a scrape of
a gateway that has run jobs, so that a renamed metric fails here rather than leaving an empty
panel or an alert that can never fire."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy.engine import make_url

from app.application import create_app
from tests.engine.conftest import busybox, submit, wait_for
from tests.ops.conftest import ScratchDatabase, admin
from tests.ops.metrics_text import Scrape, scrape
from tests.ops.test_health import api_only
from tests.servers import lifespan_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "cortex-gateway.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
# Written by Prometheus itself for each target, never by a gateway.
PROMETHEUS_OWN = {"up"}
# Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"instance", "job"}
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "sum", "max", "min", "avg", "count", "topk", "bottomk", "rate",
    "increase", "irate", "histogram_quantile",
}  # fmt: skip
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # Grafana's label_values(metric, label) reads as the selector metric{label=~".+"}.
            found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            assert found, variable
            queries.append(f'{found[1]}{{{found[2]}=~".+"}}')
    return queries


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        rules.extend(group["rules"])
    return rules


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, Grafana's $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", " ", text)
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text)) - PROMQL_WORDS


def matched_labels(expr: str) -> list[tuple[str, str]]:
    """(metric, label) for each label a selector matches on."""
    found = []
    for metric, matchers in _SELECTOR.findall(expr):
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
            found.append((metric, label))
    return found


async def scrape_after_jobs(gateway: httpx.AsyncClient) -> Scrape:
    completed = await submit(gateway, busybox("echo hi"))
    failed = await submit(gateway, busybox("exit 3"))
    for job_id in (completed, failed):
        await wait_for(gateway, job_id)
    return await scrape(gateway)


class TestDeploy:
    def test_the_files_are_what_grafana_and_prometheus_load(self) -> None:
        dashboard = json.loads(DASHBOARD.read_text())
        assert dashboard["uid"] == "cortex-gateway"
        titles = [panel["title"] for panel in dashboard["panels"]]
        for wanted in (
            "Jobs by status",
            "Failures by reason",
            "Claim lag",
            "Provider errors",
            "Provider latency (p95)",
            "Webhook deliveries",
            "Requests by status",
            "Request latency",
            "Database reachable",
        ):
            assert wanted in titles
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["targets"], panel["title"]

        rules = alert_rules()
        names = [rule["alert"] for rule in rules]
        assert len(names) == len(set(names))
        for wanted in (
            "CortexJobsFailing",
            "CortexEngineClaimLagHigh",
            "CortexProviderErrors",
            "CortexWebhookDeliveriesFailing",
            "CortexDatabaseUnreachable",
        ):
            assert wanted in names
        for rule in rules:
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule
            assert rule["annotations"]["summary"], rule

    async def test_every_metric_they_read_is_exported_by_a_running_gateway(
        self, gateway: httpx.AsyncClient
    ) -> None:
        scraped = await scrape_after_jobs(gateway)
        exported = {sample.name for sample in scraped.samples}
        queries = dashboard_queries() + [rule["expr"] for rule in alert_rules()]
        read = set().union(*(metric_names(expr) for expr in queries))
        assert read - PROMETHEUS_OWN, "no metric found: the PromQL reader is broken"
        assert read - PROMETHEUS_OWN - exported == set()
        for expr in queries:
            for metric, label in matched_labels(expr):
                if metric not in PROMETHEUS_OWN and label not in TARGET_LABELS:
                    assert label in scraped.labels(metric), (metric, label, expr)

    def test_the_promql_reader_finds_names_and_labels(self) -> None:
        # The checks above are only as good as this reader: it must be able to fail.
        expr = (
            'sum by (provider, reason) (increase(cortex_job_failures_total{reason!~"a|b"}[15m]))'
            " / on() sum(rate(cortex_typo_total[$__rate_interval])) > 0.5 and up == 0"
        )
        assert metric_names(expr) == {"cortex_job_failures_total", "cortex_typo_total", "up"}
        assert matched_labels(expr) == [("cortex_job_failures_total", "reason")]


class TestDatabaseUp:
    async def test_metrics_answer_with_database_up_0_while_it_refuses_connections(
        self, scratch_database: ScratchDatabase, postgres_server_url: str
    ) -> None:
        async with (
            scratch_database() as url,
            lifespan_app(create_app(api_only(url))) as app,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                base_url="http://gateway",
            ) as client,
        ):
            up = await scrape(client)
            assert up.value("cortex_database_up") == 1 and up.has("cortex_jobs")

            name = make_url(url).database
            await admin(postgres_server_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin(
                postgres_server_url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name",
                name=name,
            )
            down = await scrape(client)
            assert down.value("cortex_database_up") == 0
            assert down.has("cortex_database_up") and not down.has("cortex_jobs")
            assert down.has("cortex_http_requests_total"), "the process's own counters remain"

            await admin(postgres_server_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert (await scrape(client)).value("cortex_database_up") == 1
