"""`cortex providers quote` (the options of `jobs submit`, a price per provider) and
`cortex jobs metrics` (a sparkline per resource, or every bucket)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import Cortex
from tests.client.gateway import served
from tests.factories import Keys


async def test_quote_prints_a_price_per_provider_for_the_options_submit_takes(
    tmp_path: Path, database_url: str, keys: Keys
) -> None:
    api_key = await keys.create(account="alpha", scope=("admin",))
    async with served(database_url, local_usd_per_cpu_hour=1.0) as url:
        cortex = Cortex(tmp_path / "config", CORTEX_URL=url, CORTEX_API_KEY=api_key)
        spec = (
            "--image", "busybox:latest", "--cpu", "2000", "--memory", "64Mi",
            "--duration", "7200", "--env", "WHO=cortex", "--port", "8080", "--", "echo", "hi",
        )  # fmt: skip
        quoted = await cortex("providers", "quote", *spec)
        as_json = await cortex("providers", "quote", "--json", *spec)
        one = await cortex("providers", "quote", "--provider", "local", *spec)
        bad = await cortex("providers", "quote", "--image", "busybox:latest", "--env", "WHO")
        listed = json.loads((await cortex("providers", "--json")).stdout)

    assert quoted.code == 0, quoted
    lines = quoted.stdout.splitlines()
    assert lines[0].split()[:6] == ["PROVIDER", "VERDICT", "USD/HOUR", "USD", "FOR", "7200"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {provider["name"] for provider in listed}
    # 2 CPUs at 1 USD per CPU-hour: 2 USD an hour, 4 for the job's 7200 s.
    assert rows["local"][:4] == ["local", "chosen", "2.0000", "4.0000"]
    for name, row in rows.items():
        if name != "local":
            assert row[1] != "chosen" and row[2:4] == ["-", "-"], row

    comparison = json.loads(as_json.stdout)
    assert comparison["chosen"] == "local" and comparison["usdPerHour"] == 2.0
    assert [line.split()[0] for line in one.stdout.splitlines()[1:]] == ["local"]
    assert bad.code == 2 and "'WHO' is not NAME=VALUE" in bad.stderr


async def test_metrics_prints_a_sparkline_per_resource_or_every_bucket(cortex: Cortex) -> None:
    ran = await cortex(
        "jobs", "submit", "--provider", "local", "--image", "busybox:latest", "--memory", "64Mi",
        "--wait", "--", "sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 2",
    )  # fmt: skip
    assert ran.code == 0, ran
    job_id = ran.stderr.splitlines()[0]

    shown = await cortex("jobs", "metrics", job_id)
    assert shown.code == 0, shown
    lines = shown.stdout.splitlines()
    # A few seconds of samples: one bucket of a minute, or two across a minute's turn.
    heading = re.fullmatch(rf"{job_id}: ([12]) buckets? of 1m, .* to .*", lines[0])
    assert heading, lines[0]
    buckets = int(heading[1])
    assert lines[1].split() == ["AVERAGE", "MOST", "TOTAL"]
    by_name = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert set(by_name) == {"cpu", "memory", "rx", "tx"}
    spark, average, unit = by_name["memory"][:3]
    assert len(spark) == buckets and set(spark) <= set("▁▂▃▄▅▆▇█"), spark
    assert float(average) > 0 and unit == "MiB"
    assert by_name["cpu"][2] == "m"

    table = await cortex("jobs", "metrics", job_id, "--table")
    assert table.stdout.splitlines()[0].split()[:3] == ["AT", "CPU", "(millicores)"]
    assert len(table.stdout.splitlines()) == 1 + buckets

    empty = await cortex("jobs", "metrics", "job_0123456789abcdef")
    assert empty.code == 1 and "JOB_NOT_FOUND" in empty.stderr
