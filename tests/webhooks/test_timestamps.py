"""One timestamp format everywhere: the same moment reads the same in the job JSON, the job
list, GET events, the SSE events and logs streams, and the webhook payloads."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.engine.conftest import busybox, submit, wait_for
from tests.factories import API
from tests.streams.sse_client import events as sse_events
from tests.webhooks.conftest import Receiver
from tests.webhooks.test_webhooks import subscribe

# RFC 3339 in UTC, to the second, with a Z: as shared/reference/jobs-api.md shows times.
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


async def stream(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    received = []
    async with client.stream("GET", path, params={"follow": "true"}) as response:
        assert response.status_code == 200
        async for event in sse_events(response):
            if event.event == "end":
                break
            received.append(event.json())
    return received


async def test_a_jobs_times_read_the_same_on_every_surface(
    gateway: httpx.AsyncClient, receiver: Receiver
) -> None:
    endpoint = await subscribe(gateway, receiver.url, ["job.created", "job.completed"])
    job_id = await submit(gateway, busybox("echo one; echo two"))
    await wait_for(gateway, job_id)
    await receiver.wait_for(2)

    job = (await gateway.get(f"{API}/jobs/{job_id}")).json()["data"]
    timeline = {event["type"]: event["timestamp"] for event in job["events"]}
    listed = (await gateway.get(f"{API}/jobs")).json()["data"]
    events = (await gateway.get(f"{API}/jobs/{job_id}/events")).json()["data"]["events"]
    streamed = await stream(gateway, f"{API}/jobs/{job_id}/events")
    logs = (await gateway.get(f"{API}/jobs/{job_id}/logs")).json()["data"]["logs"]
    streamed_logs = await stream(gateway, f"{API}/jobs/{job_id}/logs")
    hooks = {body["type"]: body for body in receiver.verified(endpoint["secret"])}

    # Every time is in the one format...
    times = [job["createdAt"], job["startedAt"], job["endedAt"], *timeline.values()]
    times += [e["timestamp"] for e in events + streamed + logs + streamed_logs]
    times += [body["timestamp"] for body in hooks.values()]
    assert all(RFC3339_UTC.fullmatch(time) for time in times), times
    # ...and one moment reads the same wherever it shows.
    assert timeline["created"] == job["createdAt"]
    assert timeline["started"] == job["startedAt"]
    assert timeline["completed"] == job["endedAt"]
    assert [j["createdAt"] for j in listed if j["id"] == job_id] == [job["createdAt"]]
    assert {e["type"]: e["timestamp"] for e in events} == timeline
    assert {e["type"]: e["timestamp"] for e in streamed} == timeline
    assert hooks["job.created"]["timestamp"] == job["createdAt"]
    assert hooks["job.completed"]["timestamp"] == timeline["completed"]
    assert hooks["job.completed"]["data"]["createdAt"] == job["createdAt"]
    assert hooks["job.completed"]["data"]["events"] == job["events"]
    assert [line["timestamp"] for line in logs] == [line["timestamp"] for line in streamed_logs]
    assert [line["line"] for line in logs] == ["one", "two"]
