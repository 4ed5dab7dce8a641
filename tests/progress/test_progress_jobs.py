"""A workload reports its progress with `::cortex` lines: the job, its events, its event
stream and its webhooks show it, throttled, with the final values always delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.application import create_app
from tests.engine.conftest import busybox, log_lines, submit, wait_for
from tests.factories import API, Keys
from tests.servers import uvicorn_server
from tests.streams.sse_client import events
from tests.webhooks.conftest import Receiver, webhook_settings

INTERVAL = 1.0


@pytest.fixture
async def gateway(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    """A real gateway (engine, dispatcher, streams) with a 1 s progress event interval."""
    settings = webhook_settings(database_url, progress_event_interval=INTERVAL)
    async with uvicorn_server(create_app(settings)) as url:
        scopes = ["jobs:read", "jobs:write", "webhooks:read", "webhooks:write"]
        headers = {"Authorization": f"Bearer {await keys.create(scope=scopes)}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
            yield client


async def subscribe(client: httpx.AsyncClient, url: str, events: list[str]) -> str:
    response = await client.post(f"{API}/webhooks", json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    secret: str = response.json()["data"]["secret"]
    return secret


async def job_events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]["events"]
    return found


def progress_events(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in found if event["type"] == "progress"]


class TestReportedProgress:
    async def test_progress_and_message_show_in_the_job_its_events_and_a_webhook(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        secret = await subscribe(gateway, receiver.url, ["job.progress"])
        script = (
            "echo starting; "
            """echo '::cortex {"progress": 40, "message": "shard 3/8"}'; """
            "sleep 3"
        )
        job_id = await submit(gateway, busybox(script))

        job = await wait_for(gateway, job_id, {"running"})
        for _ in range(100):
            job = (await gateway.get(f"{API}/jobs/{job_id}")).json()["data"]
            if job["progress"] is not None:
                break
            await asyncio.sleep(0.1)
        assert (job["progress"], job["statusMessage"]) == (40, "shard 3/8")
        listed = (await gateway.get(f"{API}/jobs")).json()["data"]
        assert [(j["progress"], j["statusMessage"]) for j in listed if j["id"] == job_id] == [
            (40, "shard 3/8")
        ]
        await receiver.wait_for(1)
        delivery = receiver.verified(secret)[0]
        assert delivery["type"] == "job.progress"
        assert delivery["data"]["id"] == job_id
        assert (delivery["data"]["progress"], delivery["data"]["statusMessage"]) == (
            40,
            "shard 3/8",
        )

        job = await wait_for(gateway, job_id)
        assert job["status"] == "completed"
        # The workload's last word stays once it has ended.
        assert (job["progress"], job["statusMessage"]) == (40, "shard 3/8")
        reported = progress_events(await job_events(gateway, job_id))
        assert [(e["message"], e["data"]) for e in reported] == [
            ("40%: shard 3/8", {"progress": 40, "statusMessage": "shard 3/8", "outputUrl": None})
        ]
        # Control lines are log lines too: the log is what the workload printed.
        assert await log_lines(gateway, job_id) == [
            "starting",
            '::cortex {"progress": 40, "message": "shard 3/8"}',
        ]

    async def test_the_event_stream_delivers_progress_events(
        self, gateway: httpx.AsyncClient
    ) -> None:
        script = """echo '::cortex {"progress": 70, "message": "almost"}'; sleep 1"""
        job_id = await submit(gateway, busybox(script))

        received = []
        path = f"{API}/jobs/{job_id}/events?follow=true"
        async with gateway.stream("GET", path) as response:
            assert response.status_code == 200
            async for event in events(response):
                if event.event == "end":
                    break
                received.append(event.json())

        assert [e["type"] for e in received] == [
            "created",
            "scheduled",
            "started",
            "progress",
            "completed",
        ]
        assert received[3]["data"] == {
            "progress": 70,
            "statusMessage": "almost",
            "outputUrl": None,
        }

    async def test_a_declared_output_url_is_the_jobs_output_url(
        self, gateway: httpx.AsyncClient
    ) -> None:
        url = "https://storage.example.com/results/run-17.tar.gz"
        job_id = await submit(gateway, busybox(f"""echo '::cortex {{"outputUrl": "{url}"}}'"""))

        job = await wait_for(gateway, job_id)

        assert job["status"] == "completed"
        assert job["results"]["outputUrl"] == url
        assert progress_events(await job_events(gateway, job_id))[-1]["data"]["outputUrl"] == url

    async def test_bad_control_lines_change_nothing_and_stay_in_the_log(
        self, gateway: httpx.AsyncClient
    ) -> None:
        bad = [
            "::cortex {not json}",
            '::cortex {"progress": 140}',
            '::cortex {"outputUrl": "ftp://example.com/x"}',
            '::cortex {"progress": 10, "eta": 5}',
        ]
        script = "; ".join(f"echo '{line}'" for line in bad)
        job_id = await submit(gateway, busybox(script))

        job = await wait_for(gateway, job_id)

        assert job["status"] == "completed"
        assert (job["progress"], job["statusMessage"], job["results"]["outputUrl"]) == (
            None,
            None,
            None,
        )
        assert progress_events(await job_events(gateway, job_id)) == []
        assert await log_lines(gateway, job_id) == bad

    async def test_a_job_that_never_reports_has_no_progress_or_message_while_it_runs(
        self, gateway: httpx.AsyncClient
    ) -> None:
        job_id = await submit(gateway, busybox("sleep 2"))

        job = await wait_for(gateway, job_id, {"running"})

        assert (job["progress"], job["statusMessage"]) == (None, None)
        await wait_for(gateway, job_id)


class TestThrottle:
    async def test_a_thousand_progress_lines_make_a_handful_of_events_ending_on_the_last(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        secret = await subscribe(gateway, receiver.url, ["job.progress"])
        # 1000 lines over about 3 s, then the last one: 100 and "done".
        script = (
            "i=0; while [ $i -lt 999 ]; do "
            """echo "::cortex {\\"progress\\": $((i / 10)), \\"message\\": \\"step $i\\"}"; """
            "i=$((i + 1)); [ $((i % 100)) -eq 0 ] && sleep 0.3; done; "
            """echo '::cortex {"progress": 100, "message": "done"}'"""
        )
        job_id = await submit(gateway, busybox(script))

        job = await wait_for(gateway, job_id)

        assert job["status"] == "completed"
        assert (job["progress"], job["statusMessage"]) == (100, "done")
        assert len(await log_lines(gateway, job_id)) == 1000
        found = await job_events(gateway, job_id)
        reported = progress_events(found)
        # At most one per second over ~3 s, plus the trailing final one.
        assert 1 <= len(reported) <= 6, reported
        assert reported[-1]["data"] == {"progress": 100, "statusMessage": "done", "outputUrl": None}
        # The final progress comes before the job's end.
        assert [e["type"] for e in found][-2:] == ["progress", "completed"]
        await receiver.wait_for(len(reported))
        delivered = receiver.verified(secret)
        assert len(delivered) == len(reported)
        assert (delivered[-1]["data"]["progress"], delivered[-1]["data"]["statusMessage"]) == (
            100,
            "done",
        )

    async def test_a_change_inside_the_interval_follows_once_it_has_passed(
        self, gateway: httpx.AsyncClient
    ) -> None:
        script = (
            """echo '::cortex {"progress": 10}'; sleep 0.2; """
            """echo '::cortex {"progress": 20}'; sleep 10"""
        )
        job_id = await submit(gateway, busybox(script))

        await wait_for(gateway, job_id, {"running"})
        for _ in range(80):
            reported = progress_events(await job_events(gateway, job_id))
            if reported and reported[-1]["data"]["progress"] == 20:
                break
            await asyncio.sleep(0.1)

        # Still running: the trailing event did not wait for the end.
        assert (await gateway.get(f"{API}/jobs/{job_id}")).json()["data"]["status"] == "running"
        assert [e["data"]["progress"] for e in reported][-1] == 20
        await wait_for(gateway, job_id)
