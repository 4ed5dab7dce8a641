"""Jobs on the local provider run as real containers; what the API reports is what happened."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import (
    busybox,
    containers_of,
    docker_socket,
    engine_settings,
    log_lines,
    removed,
    submit,
    wait_for,
)
from tests.factories import API, Keys
from tests.servers import lifespan_app


class TestRunningJobs:
    async def test_a_job_that_prints_and_exits_0_completes_with_its_logs(
        self, gateway: httpx.AsyncClient
    ) -> None:
        job_id = await submit(
            gateway, busybox("echo one; echo two >&2; echo three", env={"WHO": "x"})
        )

        job = await wait_for(gateway, job_id)

        assert job["status"] == "completed"
        assert job["results"]["exitCode"] == 0
        assert job["results"]["reason"] is None
        assert [e["type"] for e in job["events"]] == [
            "created",
            "scheduled",
            "started",
            "completed",
        ]
        started, ended = (datetime.fromisoformat(job[k]) for k in ("startedAt", "endedAt"))
        assert started <= ended
        logs = (await gateway.get(f"{API}/jobs/{job_id}/logs")).json()["data"]["logs"]
        # Two pipes: the order within each stream is kept, across them it is the runtime's.
        assert [e["line"] for e in logs if e["stream"] == "stdout"] == ["one", "three"]
        assert [e["line"] for e in logs if e["stream"] == "stderr"] == ["two"]
        assert [entry["seq"] for entry in logs] == [1, 2, 3]
        assert await removed(job_id), "the container is removed once it ended"

    async def test_a_nonzero_exit_fails_the_job_with_its_code(
        self, gateway: httpx.AsyncClient
    ) -> None:
        job_id = await submit(gateway, busybox("echo about to fail; exit 3"))

        job = await wait_for(gateway, job_id)

        assert job["status"] == "failed"
        assert job["results"]["exitCode"] == 3
        assert job["results"]["reason"] == "exit_code"
        assert job["events"][-1]["type"] == "failed"
        assert await log_lines(gateway, job_id) == ["about to fail"]

    async def test_a_burst_of_output_before_exit_is_kept_whole(
        self, gateway: httpx.AsyncClient
    ) -> None:
        # More lines than one log read takes: all must be read before the container goes.
        job_id = await submit(gateway, busybox("seq 1 8000"))

        job = await wait_for(gateway, job_id)

        assert job["status"] == "completed"
        assert await log_lines(gateway, job_id) == [str(n) for n in range(1, 8001)]

    async def test_a_line_written_in_parts_is_stored_as_one_line(
        self, gateway: httpx.AsyncClient
    ) -> None:
        job_id = await submit(
            gateway, busybox("printf 'half '; sleep 1.5; echo whole; printf 'no newline'")
        )

        await wait_for(gateway, job_id)

        assert await log_lines(gateway, job_id) == ["half whole", "no newline"]

    async def test_environment_and_args_reach_the_container(
        self, gateway: httpx.AsyncClient
    ) -> None:
        spec = busybox('echo "$GREETING, $0"', env={"GREETING": "hello"}, args=["world"])
        job_id = await submit(gateway, spec)
        await wait_for(gateway, job_id)
        assert await log_lines(gateway, job_id) == ["hello, world"]

    async def test_the_spec_file_is_readable_inside_the_container(
        self, gateway: httpx.AsyncClient
    ) -> None:
        job_id = await submit(gateway, busybox("cat /cortex/spec/job.json", env={"MODE": "x"}))
        await wait_for(gateway, job_id)
        text = "\n".join(await log_lines(gateway, job_id))
        assert f'"id": "{job_id}"' in text
        assert '"MODE": "x"' in text
        assert '"image": "busybox:latest"' in text

    async def test_a_job_running_past_its_duration_fails_with_timeout(
        self, gateway: httpx.AsyncClient
    ) -> None:
        job_id = await submit(gateway, busybox("echo started; sleep 60", duration=2))

        job = await wait_for(gateway, job_id, timeout=30)

        assert job["status"] == "failed"
        assert job["results"]["reason"] == "timeout"
        assert "duration of 2 s" in job["results"]["message"]
        assert await log_lines(gateway, job_id) == ["started"]
        assert await removed(job_id)

    async def test_a_memory_hog_is_killed_and_fails_with_oom(
        self, gateway: httpx.AsyncClient
    ) -> None:
        hog = busybox("exec dd if=/dev/zero of=/dev/null bs=256M count=1", memory="16Mi")
        job_id = await submit(gateway, hog)

        job = await wait_for(gateway, job_id)

        assert job["status"] == "failed"
        assert job["results"]["reason"] == "oom"
        assert job["results"]["exitCode"] == 137

    async def test_a_missing_image_fails_with_image_pull(self, gateway: httpx.AsyncClient) -> None:
        job_id = await submit(gateway, busybox("true", image="cortex-test/does-not-exist:1"))

        job = await wait_for(gateway, job_id)

        assert job["status"] == "failed"
        assert job["results"]["reason"] == "image_pull"
        assert "cortex-test/does-not-exist" in job["results"]["message"]
        assert job["startedAt"] is None

    async def test_a_published_port_answers_while_the_job_runs(
        self, gateway: httpx.AsyncClient
    ) -> None:
        script = "mkdir -p /www && echo served > /www/index.html && httpd -f -p 8080 -h /www"
        job_id = await submit(
            gateway, busybox(script, ports=[{"port": 8080, "expose": True}], duration=60)
        )

        job = await wait_for(gateway, job_id, {"running"})
        for _ in range(50):
            job = (await gateway.get(f"{API}/jobs/{job_id}")).json()["data"]
            if job["endpoints"]:
                break
            await asyncio.sleep(0.1)
        [endpoint] = job["endpoints"]
        assert endpoint["port"] == 8080
        assert endpoint["url"].startswith("http://127.0.0.1:")
        async with httpx.AsyncClient() as outside:
            answer = None
            for _ in range(50):
                try:
                    answer = await outside.get(endpoint["url"] + "/index.html")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        assert answer is not None and answer.text == "served\n"

        await gateway.post(f"{API}/jobs/{job_id}/cancel")
        ended = await wait_for(gateway, job_id)
        assert ended["endpoints"] == []

    async def test_cancel_while_running_stops_the_container(
        self, gateway: httpx.AsyncClient
    ) -> None:
        job_id = await submit(gateway, busybox("echo working; sleep 60"))
        await wait_for(gateway, job_id, {"running"})

        response = await gateway.post(f"{API}/jobs/{job_id}/cancel")

        assert response.json()["data"]["status"] == "cancelling"
        job = await wait_for(gateway, job_id, timeout=30)
        assert job["status"] == "cancelled"
        assert [e["type"] for e in job["events"]][-2:] == ["cancelling", "cancelled"]
        assert await removed(job_id)
        again = await gateway.post(f"{API}/jobs/{job_id}/cancel")
        assert again.status_code == 409

    async def test_metrics_are_sampled_while_it_runs(self, gateway: httpx.AsyncClient) -> None:
        job_id = await submit(gateway, busybox("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"))
        await wait_for(gateway, job_id, timeout=60)

        response = await gateway.get(f"{API}/jobs/{job_id}/metrics?period=1h&resolution=1m")

        assert response.status_code == 200
        metrics = response.json()["data"]
        assert metrics["memory"] and metrics["memory"][0]["value"] > 0
        assert metrics["cpu"] and metrics["cpu"][0]["value"] > 0
        assert set(metrics["network"]) == {"rx", "tx"}


async def test_cost_follows_the_local_rate(database_url: str, keys: Keys) -> None:
    settings = engine_settings(database_url, local_usd_per_cpu_hour=36.0)
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            job_id = await submit(client, busybox("sleep 1", cpu=500, duration=100))
            running = await wait_for(client, job_id, {"running", "completed"})
            job = await wait_for(client, job_id)

    # 500 millicores at 36 USD per CPU-hour: 18 USD an hour, 0.5 USD for 100 s.
    assert running["cost"]["projected"] == 0.5
    assert job["cost"]["projected"] == 0.5
    elapsed = (
        datetime.fromisoformat(job["endedAt"]) - datetime.fromisoformat(job["startedAt"])
    ).total_seconds()
    # Times are shown to the second (each cut): the run lasted within a second of `elapsed`.
    assert job["cost"]["current"] == pytest.approx(18 * elapsed / 3600, abs=18 / 3600)
    assert 0 < job["cost"]["current"] < 0.5


async def test_a_quiet_container_killed_from_outside_ends_its_job_at_once(
    database_url: str, keys: Keys
) -> None:
    # The engine looks only every 30 s here, and between events the local provider answers
    # quiet looks from the runtime's event stream: the kill must reach the job through it.
    settings = engine_settings(database_url, engine_poll_interval=30.0)
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            # sh as PID 1 would ignore a TERM it does not trap.
            script = "trap 'echo bye; exit 7' TERM; echo ready; sleep 300 & wait"
            job_id = await submit(client, busybox(script))
            await wait_for(client, job_id, {"running"})
            await asyncio.sleep(1.5)  # quiet for a while: its looks are answered from memory
            (container,) = await containers_of(job_id)
            await _docker_post(f"/containers/{container['Id']}/kill", {"signal": "TERM"})
            job = await wait_for(client, job_id, timeout=10)
            lines = await log_lines(client, job_id)

    assert job["status"] == "failed"
    assert job["results"]["exitCode"] == 7
    assert job["results"]["reason"] == "exit_code"
    assert lines == ["ready", "bye"]


async def _docker_post(path: str, params: dict[str, str]) -> None:
    transport = httpx.AsyncHTTPTransport(uds=docker_socket())
    async with httpx.AsyncClient(transport=transport, base_url="http://docker") as docker:
        response = await docker.post(f"/v1.41{path}", params=params)
    assert response.status_code == 204, response.text
