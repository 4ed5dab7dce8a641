"""Live logs and events over Server-Sent Events, through a real uvicorn server."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.application import create_app
from app.streams import feeds
from tests.e2e.test_gateway_process import Gateway
from tests.engine.conftest import (
    busybox,
    cancelled_and_removed,
    engine_settings,
    submit,
    wait_for,
)
from tests.factories import API, Keys
from tests.servers import uvicorn_server
from tests.streams.sse_client import Event, events

STREAM_TIMEOUT = httpx.Timeout(60.0)


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[str]:
    settings = engine_settings(database_url, stream_heartbeat=0.5, stream_token_ttl=2)
    async with uvicorn_server(create_app(settings)) as url:
        yield url


@pytest.fixture
async def client(server: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {await keys.create()}"}
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=STREAM_TIMEOUT) as c:
        yield c


async def collect(
    client: httpx.AsyncClient, path: str, *, limit: int | None = None, **kwargs: object
) -> list[Event]:
    """Events of a stream until it ends (or `limit` events were read, then disconnect)."""
    received: list[Event] = []
    async with client.stream("GET", path, **kwargs) as response:  # type: ignore[arg-type]
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in events(response):
            received.append(event)
            if event.event == "end" or (limit is not None and len(received) >= limit):
                break
    return received


TICKS = "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done"


class TestLogStream:
    async def test_lines_arrive_while_the_container_prints_then_the_stream_ends(
        self, client: httpx.AsyncClient
    ) -> None:
        job_id = await submit(client, busybox(TICKS))

        received = await collect(client, f"{API}/jobs/{job_id}/logs?follow=true")

        lines, end = received[:-1], received[-1]
        assert [event.json()["line"] for event in lines] == [f"tick {i}" for i in range(1, 7)]
        assert [event.id for event in lines] == [str(i) for i in range(1, 7)]
        assert set(lines[0].json()) == {"timestamp", "line", "stream"}
        assert end.event == "end" and end.json() == {"status": "completed"}
        # Live: the first line reached us well before the last was printed.
        assert lines[-1].received_at - lines[0].received_at > 0.8

    async def test_resuming_with_last_event_id_sends_exactly_the_missing_lines(
        self, client: httpx.AsyncClient
    ) -> None:
        job_id = await submit(client, busybox(TICKS))
        first = await collect(client, f"{API}/jobs/{job_id}/logs?follow=true", limit=2)
        assert [event.id for event in first] == ["1", "2"]

        rest = await collect(
            client, f"{API}/jobs/{job_id}/logs?follow=true", headers={"Last-Event-ID": "2"}
        )

        assert [event.json()["line"] for event in rest[:-1]] == [f"tick {i}" for i in range(3, 7)]
        assert rest[-1].event == "end"

    async def test_tail_then_follow_of_a_finished_job(self, client: httpx.AsyncClient) -> None:
        job_id = await submit(client, busybox("echo a; echo b; echo c"))
        await wait_for(client, job_id)

        received = await collect(client, f"{API}/jobs/{job_id}/logs?follow=true&tail=2")

        assert [e.data and e.json().get("line") for e in received[:-1]] == ["b", "c"]
        assert received[-1].json() == {"status": "completed"}

    async def test_heartbeats_keep_an_idle_stream_alive(
        self, server: str, client: httpx.AsyncClient
    ) -> None:
        job_id = await submit(client, busybox("sleep 3"))
        comments = 0
        async with client.stream("GET", f"{API}/jobs/{job_id}/logs?follow=true") as response:
            assert response.headers["x-accel-buffering"] == "no"
            async for event in events(response, with_comments=True):
                comments += len(event.comments)
                if comments >= 2:
                    break
        assert comments >= 2
        await cancelled_and_removed(client, job_id)

    async def test_output_reaches_followers_as_it_is_printed_not_at_the_next_poll(
        self, database_url: str, keys: Keys
    ) -> None:
        # The engine looks only every 30 s here: lines must come from the container's
        # output waking it, not from polling.
        settings = engine_settings(database_url, engine_poll_interval=30.0)
        async with uvicorn_server(create_app(settings)) as url:
            headers = {"Authorization": f"Bearer {await keys.create()}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
                job_id = await submit(client, busybox("sleep 1; echo a; sleep 2; echo b"))
                received = await collect(client, f"{API}/jobs/{job_id}/logs?follow=true")

        lines = received[:-1]
        assert [event.json()["line"] for event in lines] == ["a", "b"]
        assert lines[1].received_at - lines[0].received_at > 1.5
        assert received[-1].json() == {"status": "completed"}

    async def test_many_followers_of_one_job_each_get_every_line_once(
        self, client: httpx.AsyncClient
    ) -> None:
        job_id = await submit(client, busybox("for i in $(seq 1 40); do echo $i; sleep 0.02; done"))
        path = f"{API}/jobs/{job_id}/logs?follow=true"

        streams = await asyncio.gather(*(collect(client, path) for _ in range(20)))

        for received in streams:
            assert [event.json()["line"] for event in received[:-1]] == [
                str(n) for n in range(1, 41)
            ]
            assert received[-1].event == "end"

    async def test_a_follower_far_behind_the_live_ones_reads_back_to_its_cursor(
        self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The live followers' shared window keeps only a few lines; the late follower starts
        # before it and must read the rest from the database, then join the live ones.
        monkeypatch.setattr(feeds, "WINDOW", 5)
        job_id = await submit(client, busybox("seq 1 30; sleep 1; seq 31 40"))
        path = f"{API}/jobs/{job_id}/logs?follow=true"
        async with client.stream("GET", path) as live:
            first = []
            async for event in events(live):
                first.append(event)
                if event.id == "30":
                    break
            late = await collect(client, path, limit=35, headers={"Last-Event-ID": "2"})

        assert [event.json()["line"] for event in late] == [str(n) for n in range(3, 38)]

    async def test_a_bad_last_event_id_is_400(self, client: httpx.AsyncClient) -> None:
        job_id = await submit(client, busybox("true"))
        response = await client.get(
            f"{API}/jobs/{job_id}/logs?follow=true", headers={"Last-Event-ID": "abc"}
        )
        assert response.status_code == 400


class TestEventStreams:
    async def test_a_jobs_events_stream_to_the_end(self, client: httpx.AsyncClient) -> None:
        job_id = await submit(client, busybox("sleep 0.5"))

        received = await collect(client, f"{API}/jobs/{job_id}/events?follow=true")

        assert [e.json()["type"] for e in received[:-1]] == [
            "created",
            "scheduled",
            "started",
            "completed",
        ]
        assert [e.id for e in received[:-1]] == ["1", "2", "3", "4"]
        plain = (await client.get(f"{API}/jobs/{job_id}/events")).json()["data"]["events"]
        assert [e["type"] for e in plain] == ["created", "scheduled", "started", "completed"]

    async def test_the_account_stream_carries_status_changes_of_every_job(
        self, client: httpx.AsyncClient, server: str, keys: Keys
    ) -> None:
        received: list[Event] = []

        async def follow() -> None:
            async with client.stream("GET", f"{API}/jobs/events?follow=true") as response:
                async for event in events(response):
                    received.append(event)
                    if sum(e.json()["type"] == "completed" for e in received) == 2:
                        return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.5)
        first = await submit(client, busybox("true"))
        second = await submit(client, busybox("sleep 0.3"))
        other = httpx.AsyncClient(
            base_url=server,
            headers={"Authorization": f"Bearer {await keys.create(account='beta')}"},
        )
        await submit(other, busybox("true"))
        await other.aclose()
        async with asyncio.timeout(30):
            await follower

        by_job: dict[str, list[str]] = {}
        for event in received:
            by_job.setdefault(event.json()["jobId"], []).append(event.json()["type"])
        assert by_job == {
            first: ["created", "scheduled", "started", "completed"],
            second: ["created", "scheduled", "started", "completed"],
        }
        ids = [event.id for event in received]
        assert len(set(ids)) == len(ids)

        # Reconnecting after the second event resumes there.
        resumed = []
        async with client.stream(
            "GET", f"{API}/jobs/events?follow=true", headers={"Last-Event-ID": ids[1]}
        ) as response:
            async for event in events(response):
                resumed.append(event.id)
                if len(resumed) == len(ids) - 2:
                    break
        assert resumed == ids[2:]


class TestStreamTokens:
    async def test_a_token_opens_that_jobs_streams_without_a_key(
        self, client: httpx.AsyncClient, server: str
    ) -> None:
        job_id = await submit(client, busybox("echo hi"))
        issued = await client.post(f"{API}/jobs/{job_id}/stream-token")
        assert issued.status_code == 201
        token = issued.json()["data"]["token"]
        assert issued.json()["data"]["expiresAt"].endswith("Z")

        async with httpx.AsyncClient(base_url=server, timeout=STREAM_TIMEOUT) as browser:
            # The events first: this module's tokens live 2 s, and following the logs lasts
            # until the job ends, which can take longer on a loaded machine.
            plain = await browser.get(f"{API}/jobs/{job_id}/events?token={token}")
            received = await collect(browser, f"{API}/jobs/{job_id}/logs?follow=true&token={token}")
            job = await browser.get(f"{API}/jobs/{job_id}?token={token}")
            listing = await browser.get(f"{API}/jobs?token={token}")

        assert [e.json().get("line") for e in received[:-1]] == ["hi"]
        assert plain.status_code == 200, plain.text
        assert job.status_code == 401, "a stream token opens streams only"
        assert listing.status_code == 401

    async def test_other_jobs_tampered_expired_tokens_and_keys_are_401(
        self, client: httpx.AsyncClient, server: str
    ) -> None:
        job_id = await submit(client, busybox("sleep 5"))
        other_id = await submit(client, busybox("true"))
        token = (await client.post(f"{API}/jobs/{job_id}/stream-token")).json()["data"]["token"]
        payload, _, signature = token.partition(".")
        tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
        api_key = client.headers["Authorization"].removeprefix("Bearer ")

        async with httpx.AsyncClient(base_url=server) as browser:
            for bad, path_job in [
                (token, other_id),
                (tampered, job_id),
                (api_key, job_id),
                ("garbage", job_id),
            ]:
                response = await browser.get(f"{API}/jobs/{path_job}/events?token={bad}")
                assert response.status_code == 401, (bad, response.text)
                assert response.json()["error"]["code"] == "UNAUTHORIZED"
            await asyncio.sleep(2.5)
            expired = await browser.get(f"{API}/jobs/{job_id}/events?token={token}")
        assert expired.status_code == 401
        await cancelled_and_removed(client, job_id)

    async def test_a_token_for_another_accounts_job_cannot_be_issued(
        self, client: httpx.AsyncClient, server: str, keys: Keys
    ) -> None:
        job_id = await submit(client, busybox("true"))
        headers = {"Authorization": f"Bearer {await keys.create(account='beta')}"}
        async with httpx.AsyncClient(base_url=server, headers=headers) as other:
            response = await other.post(f"{API}/jobs/{job_id}/stream-token")
        assert response.status_code == 404


async def test_a_stream_on_one_process_follows_a_job_run_by_another(
    database_url: str, keys: Keys, tmp_path: Path
) -> None:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        CORTEX_DATA_DIR=str(tmp_path / "unused"),
        CORTEX_ENGINE_POLL_INTERVAL="0.2",
    )
    runner = Gateway(env, tmp_path / "runner.log")
    try:
        runner.wait_until_serving()
        key = {"Authorization": f"Bearer {await keys.create()}"}
        # This process only serves the API: no engine, so the lines can only come from the other.
        api_only = create_app(engine_settings(database_url, engine_enabled=False))
        async with (
            uvicorn_server(api_only) as url,
            httpx.AsyncClient(base_url=url, headers=key, timeout=STREAM_TIMEOUT) as c,
        ):
            job_id = await submit(c, busybox(TICKS))
            started = time.monotonic()
            received = await collect(c, f"{API}/jobs/{job_id}/logs?follow=true")
        assert [e.json()["line"] for e in received[:-1]] == [f"tick {i}" for i in range(1, 7)]
        assert received[-1].json() == {"status": "completed"}
        assert time.monotonic() - started < 30
    finally:
        runner.kill()


async def test_a_stalled_client_is_cut_off_while_a_reading_one_gets_everything(
    database_url: str, keys: Keys
) -> None:
    # ~5 MB of events: more than the kernel and the server's transport buffer hold for a
    # client that reads nothing, so its sends stall and stream_send_timeout ends its stream.
    lines = 40_000
    settings = engine_settings(database_url, stream_send_timeout=1.0)
    key = await keys.create()
    async with (
        uvicorn_server(create_app(settings)) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=STREAM_TIMEOUT
        ) as client,
    ):
        job_id = await submit(client, busybox(f"yes {'x' * 100} | head -n {lines}; sleep 2"))
        path = f"{API}/jobs/{job_id}/logs?follow=true"
        stalled = _stalled_request(url, path, key)
        try:
            received = await collect(client, path)
            await asyncio.sleep(settings.stream_send_timeout + 1)
            cut_short = await asyncio.to_thread(_read_to_eof, stalled)
        finally:
            stalled.close()

    assert len(received) == lines + 1 and received[-1].json() == {"status": "completed"}
    assert cut_short.startswith(b"HTTP/1.1 200 OK")
    assert b"event: end" not in cut_short


def _stalled_request(url: str, path: str, key: str) -> socket.socket:
    """A follower that asks for the stream and then reads nothing, through a tiny window."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def _read_to_eof(sock: socket.socket) -> bytes:
    """Everything the server sent before it closed the connection."""
    sock.settimeout(10)
    received = bytearray()
    while chunk := sock.recv(1 << 16):
        received += chunk
    return bytes(received)
