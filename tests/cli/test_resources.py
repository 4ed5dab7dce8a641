"""`cortex webhooks ...` and `cortex providers` against a real gateway."""

from __future__ import annotations

import json
from pathlib import Path

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


async def test_webhook_create_with_a_secret_of_ones_own(cortex: Cortex) -> None:
    url = "http://127.0.0.1:9/hook"
    created = await cortex(
        "webhooks", "create", "--url", url, "--event", "*", "--secret", "your-webhook-secret"
    )
    assert created.code == 0, created
    assert created.stdout.strip() == "your-webhook-secret"
    short = await cortex("webhooks", "create", "--url", url, "--event", "*", "--secret", "short")
    assert short.code == 1 and "VALIDATION_ERROR" in short.stderr


async def test_providers_show_health_and_capabilities(cortex: Cortex) -> None:
    providers = json.loads((await cortex("providers", "--json")).stdout)
    local = next(p for p in providers if p["name"] == "local")
    assert local["health"]["status"] == "healthy"
    table = (await cortex("providers")).stdout
    assert any(line.split()[:2] == ["local", "healthy"] for line in table.splitlines())
    one = json.loads((await cortex("providers", "get", "local", "--json")).stdout)
    assert one["name"] == "local" and one["capabilities"]["ports"] is True

    quoted = await cortex("providers", "quote", "--image", "busybox:latest", "--memory", "64Mi")
    rows = [line.split() for line in quoted.stdout.splitlines()[1:]]
    assert rows[0][:2] == ["local", "chosen"], quoted
    assert {row[0] for row in rows} == {p["name"] for p in providers}


GREETER = {
    "provider": "local",
    "image": "busybox:latest",
    "cpu": 250,
    "memory": "32Mi",
    "storage": "1Gi",
    "duration": 60,
    "env": {"GREETING": "hello", "WHO": "world"},
    "command": ["sh", "-c", "echo $GREETING, $WHO"],
}


async def test_templates_and_jobs_from_them(cortex: Cortex) -> None:
    created = await cortex(
        "templates", "create", "greeter", "--config", "-", "--description", "says hello",
        input=json.dumps(GREETER),
    )  # fmt: skip
    assert created.code == 0, created
    template_id = created.stdout.strip()
    listed = (await cortex("templates", "list")).stdout
    assert template_id in listed and "greeter" in listed and "says hello" in listed

    ran = await cortex(
        "jobs", "submit", "--template", template_id, "--env", "WHO=Cortex", "--wait"
    )  # fmt: skip
    assert (ran.code, ran.stdout) == (0, "hello, Cortex\n"), ran
    job = json.loads((await cortex("jobs", "get", ran.stderr.split()[0], "--json")).stdout)
    assert job["templateId"] == template_id and job["cpu"] == 250

    broken = await cortex("templates", "create", "broken", "--config", "-", input="{")
    assert broken.code == 2 and "is not JSON" in broken.stderr
    assert (await cortex("templates", "delete", template_id)).code == 0
    gone = await cortex("templates", "get", template_id)
    assert gone.stderr.startswith("error: TEMPLATE_NOT_FOUND: ")


async def test_batch_submit_waits_with_progress_and_reports_failures(
    cortex: Cortex, tmp_path: Path
) -> None:
    jobs = [{**GREETER, "command": ["sh", "-c", f"sleep 0.5; exit {code}"]} for code in (0, 3, 0)]
    file = tmp_path / "batch.json"
    file.write_text(json.dumps({"jobs": jobs, "concurrency": 2}))
    waited = await cortex("batch", "submit", str(file), "--wait")
    assert waited.code == 1, waited
    lines = waited.stderr.splitlines()
    batch_id = lines[0].split(":")[0]
    assert lines[0] == f"{batch_id}: 3 jobs, 2 at a time"
    assert lines[-2] == f"{batch_id}: 2 completed, 1 failed"
    assert lines[-1].endswith(" failed: exit code 3")
    # Never more than two of its jobs active at once, as the counts went by.
    for line in lines[1:-2]:
        counts = dict(
            (status, int(n))
            for n, status in (part.split() for part in line.split(": ")[1].split(", "))
        )
        assert counts.get("scheduled", 0) + counts.get("running", 0) <= 2, line

    shown = json.loads((await cortex("batch", "get", batch_id, "--json")).stdout)
    assert (shown["status"], shown["total"]) == ("finished", 3)
    assert batch_id in (await cortex("batch", "list")).stdout
    listed = json.loads((await cortex("jobs", "list", "--batch", batch_id, "--json")).stdout)
    assert sorted(job["id"] for job in listed) == sorted(shown["jobIds"])

    file.write_text(json.dumps([GREETER] * 2))
    quick = await cortex("batch", "submit", str(file), "--wait")
    assert quick.code == 0 and quick.stderr.splitlines()[-1].endswith("all 2 jobs completed")
