"""`cortex jobs ...` against a real gateway running jobs on the real container runtime."""

from __future__ import annotations

import asyncio
import json

from cortex_client import AsyncClient
from tests.cli.conftest import Cortex


async def test_submit_wait_prints_the_output_and_exits_with_the_jobs_exit_code(
    cortex: Cortex,
) -> None:
    result = await cortex(
        "jobs", "submit", "--provider", "local", "--image", "busybox:latest",
        "--memory", "64Mi", "--wait", "--", "sh", "-c", "echo hi; exit 3",
    )  # fmt: skip
    assert result.code == 3, result
    assert result.stdout == "hi\n"
    job_id = result.stderr.splitlines()[0]
    assert job_id.startswith("job_")
    assert f"{job_id} failed: exit code 3" in result.stderr
    assert "Traceback" not in result.stderr

    done = await cortex(
        "jobs", "submit", "--provider", "local", "--image", "busybox:latest",
        "--wait", "--", "sh", "-c", "echo a; echo b >&2",
    )  # fmt: skip
    assert (done.code, done.stdout) == (0, "a\n")  # the job's stderr goes to stderr
    assert "\nb\n" in done.stderr


async def test_submit_wait_of_a_cancelled_job_exits_non_zero_with_the_reason(
    cortex: Cortex, gateway_url: str, api_key: str
) -> None:
    waiting = await cortex.start(
        "jobs", "submit", "--provider", "local", "--image", "busybox:latest",
        "--wait", "--", "sh", "-c", "echo started; sleep 60",
    )  # fmt: skip
    assert waiting.stdout is not None and waiting.stderr is not None
    async with asyncio.timeout(60):
        job_id = (await waiting.stderr.readline()).decode().strip()
        assert await waiting.stdout.readline() == b"started\n"
    async with AsyncClient(url=gateway_url, api_key=api_key) as client:
        await client.jobs.cancel(job_id)
    async with asyncio.timeout(60):
        _, err = await waiting.communicate()
    assert waiting.returncode == 1
    assert f"{job_id} was cancelled" in err.decode()


async def test_submit_without_wait_prints_the_id_and_the_job_is_listed(cortex: Cortex) -> None:
    submitted = await cortex(
        "jobs", "submit", "--provider", "local", "--image", "busybox:latest",
        "--env", "GREETING=hello there", "--cpu", "250", "--", "sh", "-c", "echo $GREETING",
    )  # fmt: skip
    assert submitted.code == 0, submitted
    job_id = submitted.stdout.strip()

    listed = await cortex("jobs", "list", "--json")
    jobs = json.loads(listed.stdout)
    assert [job["id"] for job in jobs] == [job_id]
    assert jobs[0]["cpu"] == 250

    table = await cortex("jobs", "list", "--provider", "local")
    assert job_id in table.stdout and "busybox:latest" in table.stdout

    followed = await cortex("jobs", "logs", "-f", job_id)
    assert followed.stdout == "hello there\n"
    got = json.loads((await cortex("jobs", "get", job_id, "--json")).stdout)
    assert got["config"]["env"] == {"GREETING": "hello there"}
    assert got["status"] == "completed"
    shown = await cortex("jobs", "get", job_id)
    assert "completed" in shown.stdout and "sh -c echo $GREETING" in shown.stdout
    assert (await cortex("jobs", "logs", job_id, "--tail", "1")).stdout == "hello there\n"
    events = await cortex("jobs", "events", job_id)
    assert [line.split()[2] for line in events.stdout.splitlines()] == [
        "created",
        "scheduled",
        "started",
        "completed",
    ]
    metrics = await cortex("jobs", "metrics", job_id, "--json")
    assert set(json.loads(metrics.stdout)) == {"cpu", "memory", "network"}


async def test_api_errors_print_code_and_message_without_a_traceback(
    cortex: Cortex, tmp_path: object
) -> None:
    missing = await cortex("jobs", "get", "job_0123456789abcdef")
    assert missing.code == 1
    assert missing.stderr == "error: JOB_NOT_FOUND: Job job_0123456789abcdef not found.\n"

    invalid = await cortex(
        "jobs", "submit", "--provider", "aws", "--image", "busybox", "--memory", "512MB"
    )  # fmt: skip
    assert invalid.code == 1
    lines = invalid.stderr.splitlines()
    assert lines[0] == "error: VALIDATION_ERROR: Invalid request body."
    assert any(line.startswith("  provider: unknown provider 'aws'") for line in lines)
    assert any(line.startswith("  memory: '512MB' is not a quantity") for line in lines)

    cancelled_twice = await cortex("jobs", "cancel", "job_0123456789abcdef")
    assert cancelled_twice.stderr.startswith("error: JOB_NOT_FOUND")

    wrong_key = Cortex(
        cortex.env["XDG_CONFIG_HOME"],  # type: ignore[arg-type]
        CORTEX_URL=cortex.env["CORTEX_URL"],
        CORTEX_API_KEY="cgw_wrong-key-0000000000000000000",
    )
    refused = await wrong_key("jobs", "list")
    assert (refused.code, refused.stderr.split(":")[0:2]) == (1, ["error", " UNAUTHORIZED"])

    nowhere = Cortex(cortex.env["XDG_CONFIG_HOME"], CORTEX_URL="http://127.0.0.1:1")  # type: ignore[arg-type]
    unreachable = await nowhere("jobs", "list")
    assert unreachable.code == 1
    assert unreachable.stderr.startswith("error: cannot reach the gateway at http://127.0.0.1:1")
    following = await nowhere("jobs", "logs", "-f", "job_0123456789abcdef")  # not retried
    assert following.code == 1 and following.stderr == unreachable.stderr

    unconfigured = await Cortex(cortex.env["XDG_CONFIG_HOME"])("jobs", "list")  # type: ignore[arg-type]
    assert unconfigured.code == 1
    assert "cortex login --url URL" in unconfigured.stderr
    for result in (missing, invalid, refused, unreachable, following, unconfigured):
        assert "Traceback" not in result.stderr and result.stdout == ""
