"""The fake yagna speaks yagna's wire format (ya-client specs, yagna's handlers): checked here
directly over HTTP, so that the adapter's tests against it mean something."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.golem import APP_KEY, RunningFake, running_fake
from tests.providers.conformance.harness_golem import fast_timing
from tests.servers import uvicorn_server


@pytest.fixture
async def fake() -> AsyncIterator[RunningFake]:
    async with running_fake(fast_timing()) as running:
        yield running


@pytest.fixture
async def client(fake: RunningFake) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {APP_KEY}"}
    async with httpx.AsyncClient(base_url=fake.url, headers=headers) as made:
        yield made


async def approved_activity(client: httpx.AsyncClient, fake: RunningFake) -> str:
    """allocation -> decorated demand -> counter -> agreement -> activity, as a requestor."""
    allocation = (
        await client.post(
            "/payment-api/v1/allocations",
            json={"totalAmount": "1", "paymentPlatform": {"driver": "erc20", "network": "polygon"}},
        )
    ).json()["allocationId"]
    decorations = (
        await client.get("/payment-api/v1/demandDecorations", params={"allocationIds": allocation})
    ).json()
    properties: dict[str, Any] = {d["key"]: d["value"] for d in decorations["properties"]}
    properties["golem.srv.comp.task_package"] = (
        f"hash:sha3:{fake.yagna.images['cortex/busybox:1']}:http://x"
    )
    properties["golem.srv.comp.expiration"] = int((time.time() + 900) * 1000)
    demand = {
        "properties": properties,
        "constraints": "(&(golem.node.id.name=steady)" + "".join(decorations["constraints"]) + ")",
    }
    subscription = (await client.post("/market-api/v1/demands", json=demand)).json()
    [offer] = (await client.get(f"/market-api/v1/demands/{subscription}/events")).json()
    ours = await client.post(
        f"/market-api/v1/demands/{subscription}/proposals/{offer['proposal']['proposalId']}",
        json=demand,
    )
    [draft] = (await client.get(f"/market-api/v1/demands/{subscription}/events")).json()
    assert draft["proposal"]["prevProposalId"] == ours.json()
    agreement = (
        await client.post(
            "/market-api/v1/agreements",
            json={"proposalId": draft["proposal"]["proposalId"], "validTo": "2100-01-01T00:00:00Z"},
        )
    ).json()
    await client.post(f"/market-api/v1/agreements/{agreement}/confirm")
    while (
        await client.post(f"/market-api/v1/agreements/{agreement}/wait", params={"timeout": 1})
    ).status_code != 204:
        pass
    created = await client.post("/activity-api/v1/activity", json=agreement)
    assert created.status_code == 201
    activity: str = created.json()  # a bare agreement id in, a bare activity id out
    return activity


class TestWireFormat:
    async def test_every_daemon_route_wants_the_app_key(self, fake: RunningFake) -> None:
        async with httpx.AsyncClient(base_url=fake.url) as anonymous:
            response = await anonymous.get("/market-api/v1/demands")
        assert response.status_code == 401
        assert "message" in response.json()

    async def test_the_registry_resolves_tags_and_hashes_and_404s_the_rest(
        self, fake: RunningFake
    ) -> None:
        async with httpx.AsyncClient(base_url=fake.url) as registry:
            tag = (await registry.get("/v1/image/info", params={"tag": "cortex/busybox:1"})).json()
            same = await registry.get("/v1/image/info", params={"hash": tag["sha3"]})
            unknown = await registry.get("/v1/image/info", params={"tag": "nginx:latest"})
        assert set(tag) == {"http", "sha3"} and same.json() == tag
        assert unknown.status_code == 404

    async def test_ids_are_bare_json_strings(
        self, client: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        activity = await approved_activity(client, fake)
        script = json.dumps([{"deploy": {}}, {"start": {}}])
        batch = await client.post(
            f"/activity-api/v1/activity/{activity}/exec", json={"text": script}
        )
        assert batch.status_code == 200 and isinstance(batch.json(), str)

    async def test_an_exescript_must_come_as_text(
        self, client: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        activity = await approved_activity(client, fake)
        response = await client.post(
            f"/activity-api/v1/activity/{activity}/exec", json=[{"deploy": {}}]
        )
        assert response.status_code == 400

    async def test_results_stream_as_runtime_events_with_the_return_code(
        self, client: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        activity = await approved_activity(client, fake)
        capture = {"stdout": {"stream": {}}}
        script = [
            {"deploy": {}},
            {"start": {}},
            {
                "run": {
                    "entry_point": "/bin/sh",
                    "args": ["-c", "echo hi; exit 4"],
                    "capture": capture,
                }
            },
        ]
        batch = (
            await client.post(
                f"/activity-api/v1/activity/{activity}/exec", json={"text": json.dumps(script)}
            )
        ).json()
        path = f"/activity-api/v1/activity/{activity}/exec/{batch}"
        frames: list[list[str]] = []
        async with client.stream("GET", path, headers={"Accept": "text/event-stream"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            frame: list[str] = []
            async for line in stream.aiter_lines():
                if line:
                    frame.append(line)
                    continue
                frames.append(frame)
                frame = []
                if '"finished"' in frames[-1][1] and '"index":2' in frames[-1][1]:
                    break
        events = [json.loads(f[1].removeprefix("data: ")) for f in frames]
        assert all(f[0] == "event: runtime" for f in frames)
        assert [f[2] for f in frames] == [f"id: {n}" for n in range(len(frames))]
        assert set(events[0]) == {"batch_id", "index", "timestamp", "kind"}
        assert {"stdout": "hi\n"} in [e["kind"] for e in events]
        assert events[-1]["kind"] == {"finished": {"return_code": 4, "message": None}}

        results = (await client.get(path, params={"timeout": 1})).json()
        run = results[-1]
        assert (run["index"], run["result"], run["isBatchFinished"]) == (2, "Error", True)
        assert run["stdout"] == "hi\n" and "exited with code 4" in run["message"]

    async def test_no_capture_means_no_output(
        self, client: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        activity = await approved_activity(client, fake)
        script = [
            {"deploy": {}},
            {"start": {}},
            {"run": {"entry_point": "/bin/sh", "args": ["-c", "echo hidden"]}},
        ]
        batch = (
            await client.post(
                f"/activity-api/v1/activity/{activity}/exec", json={"text": json.dumps(script)}
            )
        ).json()
        path = f"/activity-api/v1/activity/{activity}/exec/{batch}"
        results = (await client.get(path, params={"timeout": 5, "commandIndex": 2})).json()
        assert results[-1]["result"] == "Ok" and "stdout" not in results[-1]

    async def test_a_second_activity_on_one_agreement_is_refused(
        self, client: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        activity = await approved_activity(client, fake)
        agreement = fake.yagna.activities[activity].agreement.id
        again = await client.post("/activity-api/v1/activity", json={"agreementId": agreement})
        assert again.status_code == 500
        assert "already has an activity" in again.json()["message"]


class TestTransfer:
    """`transfer` as yagna's ExeUnit does it (tests/fakes/golem/transfer.py cites the code)."""

    async def run_script(
        self, client: httpx.AsyncClient, activity: str, script: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        batch = (
            await client.post(
                f"/activity-api/v1/activity/{activity}/exec", json={"text": json.dumps(script)}
            )
        ).json()
        path = f"/activity-api/v1/activity/{activity}/exec/{batch}"
        while True:
            results: list[dict[str, Any]] = (await client.get(path, params={"timeout": 5})).json()
            if results and results[-1]["isBatchFinished"]:
                return results

    async def test_a_file_in_a_host_volume_is_put_chunked_and_others_are_not_found(
        self, client: httpx.AsyncClient, fake: RunningFake
    ) -> None:
        received: list[tuple[str, dict[str, str], bytes]] = []

        async def receive_upload(request: Request) -> Response:
            body = b"".join([chunk async for chunk in request.stream()])
            received.append((request.method, dict(request.headers), body))
            return Response(status_code=413 if request.url.path == "/full" else 201)

        receiver = Starlette(routes=[Route("/{path:path}", receive_upload, methods=["PUT"])])
        activity = await approved_activity(client, fake)
        deploy = {"deploy": {"volumes": {"/work/out": {"host": {}}}}}
        run = {"run": {"entry_point": "/bin/sh", "args": ["-c", "echo hi > /work/out/a.txt"]}}
        await self.run_script(client, activity, [deploy, {"start": {}}, run])
        async with uvicorn_server(receiver) as url:
            sent = await self.run_script(
                client, activity, [{"transfer": {"from": "container:/work/out/a.txt", "to": url}}]
            )
            assert sent[-1]["result"] == "Ok"
            [(method, headers, body)] = received
            assert (method, body) == ("PUT", b"hi\n")
            assert headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in headers and "content-type" not in headers

            refused = await self.run_script(
                client,
                activity,
                [{"transfer": {"from": "container:/work/out/a.txt", "to": url + "/full"}}],
            )
            assert refused[-1]["message"] == (
                "Local service error: Transfer error: HTTP error: client error: "
                "413 Payload Too Large"
            )
            outside = await self.run_script(
                client, activity, [{"transfer": {"from": "container:/etc/hostname", "to": url}}]
            )
            assert outside[-1]["message"] == (
                "Local service error: Transfer error: IO error: "
                "path not found in container: /etc/hostname"
            )
            assert len(received) == 2  # the refused one once: a 4xx is not retried
