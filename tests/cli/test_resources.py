"""`cortex webhooks ...` and `cortex providers` against a real gateway."""

from __future__ import annotations

import json

from tests.cli.conftest import Cortex


async def test_webhook_commands(cortex: Cortex) -> None:
    url = "http://127.0.0.1:9/hook"  # nothing listens: every delivery fails
    created = await cortex("webhooks", "create", "--url", url, "--event", "job.completed")
    assert created.code == 0, created
    secret = created.stdout.strip()
    assert secret.startswith("whsec_")
    endpoint_id = created.stderr.split()[1].rstrip(".")

    listed = json.loads((await cortex("webhooks", "list", "--json")).stdout)
    assert [(e["id"], e["events"]) for e in listed] == [(endpoint_id, ["job.completed"])]
    assert "secret" not in listed[0]
    table = (await cortex("webhooks", "list")).stdout
    assert endpoint_id in table and url in table

    updated = await cortex("webhooks", "update", endpoint_id, "--event", "*", "--json")
    assert json.loads(updated.stdout)["events"] == ["*"]

    sent = json.loads((await cortex("webhooks", "test", endpoint_id, "--json")).stdout)
    deliveries = json.loads((await cortex("webhooks", "deliveries", endpoint_id, "--json")).stdout)
    assert [d["id"] for d in deliveries] == [sent["id"]]
    retried = await cortex("webhooks", "retry", endpoint_id, sent["id"])
    assert retried.code == 0 and sent["id"] in retried.stdout

    rotated = await cortex("webhooks", "rotate-secret", endpoint_id)
    assert rotated.stdout.strip().startswith("whsec_") and rotated.stdout.strip() != secret

    assert (await cortex("webhooks", "delete", endpoint_id)).code == 0
    gone = await cortex("webhooks", "get", endpoint_id)
    assert (gone.code, gone.stderr.split(":")[1].strip()) == (1, "WEBHOOK_NOT_FOUND")


async def test_providers_show_health_and_capabilities(cortex: Cortex) -> None:
    providers = json.loads((await cortex("providers", "--json")).stdout)
    local = next(p for p in providers if p["name"] == "local")
    assert local["health"]["status"] == "healthy"
    table = (await cortex("providers")).stdout
    assert any(line.split()[:2] == ["local", "healthy"] for line in table.splitlines())
    one = json.loads((await cortex("providers", "get", "local", "--json")).stdout)
    assert one["name"] == "local" and one["capabilities"]["ports"] is True
