"""Webhooks: the endpoints API, signed deliveries to a real receiver, retries and safety."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.application import create_app
from app.jobs.record import JobRecord
from tests.engine.conftest import busybox, submit, wait_for
from tests.factories import API, Keys
from tests.servers import lifespan_app
from tests.webhooks.conftest import Receiver, webhook_settings


async def subscribe(
    client: httpx.AsyncClient, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(f"{API}/webhooks", json={"url": url, "events": events or ["*"]})
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()["data"]
    return endpoint


async def deliveries(
    client: httpx.AsyncClient, endpoint_id: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/webhooks/{endpoint_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


async def settled(
    client: httpx.AsyncClient, endpoint_id: str, count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    """Wait until `count` deliveries have stopped being pending."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await deliveries(client, endpoint_id)
        if len(found) >= count and all(d["status"] != "pending" for d in found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"deliveries did not settle: {found}")
        await asyncio.sleep(0.1)


class TestEndpointsAPI:
    async def test_create_shows_the_secret_once(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await subscribe(gateway, receiver.url, ["job.completed", "job.failed"])

        assert created["id"].startswith("whk_")
        assert created["secret"].startswith("whsec_")
        assert created["events"] == ["job.completed", "job.failed"]
        assert created["active"] is True
        listed = (await gateway.get(f"{API}/webhooks")).json()
        assert [e["id"] for e in listed["data"]] == [created["id"]]
        assert "secret" not in listed["data"][0]
        assert listed["meta"]["pagination"]["total"] == 1
        one = (await gateway.get(f"{API}/webhooks/{created['id']}")).json()["data"]
        assert "secret" not in one

    async def test_a_given_secret_is_kept(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        response = await gateway.post(
            f"{API}/webhooks", json={"url": receiver.url, "events": ["*"], "secret": secret}
        )
        assert response.json()["data"]["secret"] == secret

    async def test_update_and_delete(self, gateway: httpx.AsyncClient, receiver: Receiver) -> None:
        endpoint = await subscribe(gateway, receiver.url)
        path = f"{API}/webhooks/{endpoint['id']}"

        patched = await gateway.patch(path, json={"events": ["job.failed"], "active": False})
        assert patched.status_code == 200
        assert patched.json()["data"]["events"] == ["job.failed"]
        assert patched.json()["data"]["active"] is False

        assert (await gateway.delete(path)).status_code == 204
        assert (await gateway.get(path)).json()["error"]["code"] == "WEBHOOK_NOT_FOUND"

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
            ({"url": "https://example.com/x", "events": ["job.exploded"]}, "events[0]"),
            ({"url": "https://example.com/x", "events": []}, "events"),
            ({"url": "https://example.com/x", "events": ["*"], "secret": "plain"}, "secret"),
            ({"url": "https://example.com/x", "events": ["*"], "colour": "red"}, "colour"),
        ],
    )
    async def test_bad_bodies_are_400(
        self, gateway: httpx.AsyncClient, body: dict[str, Any], field: str
    ) -> None:
        response = await gateway.post(f"{API}/webhooks", json=body)
        assert response.status_code == 400
        assert field in [d["field"] for d in response.json()["error"]["details"]]

    async def test_another_accounts_endpoint_is_404(
        self, gateway: httpx.AsyncClient, receiver: Receiver, keys: Keys
    ) -> None:
        endpoint = await subscribe(gateway, receiver.url)
        other = {"Authorization": f"Bearer {await keys.create(account='beta', scope=['admin'])}"}
        response = await gateway.get(f"{API}/webhooks/{endpoint['id']}", headers=other)
        assert response.status_code == 404

    async def test_scopes(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        jobs_only = {"Authorization": f"Bearer {await keys.create()}"}
        response = await gateway.get(f"{API}/webhooks", headers=jobs_only)
        assert response.status_code == 403


class TestSafety:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:9/hook",
            "http://localhost/hook",
            "http://10.0.0.5/hook",
            "http://192.168.1.1/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[fd00::1]/hook",
            "http://0.0.0.0/hook",
        ],
    )
    async def test_private_addresses_are_refused_by_default(
        self, database_url: str, keys: Keys, url: str
    ) -> None:
        settings = webhook_settings(database_url, webhook_allowed_networks="")
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create(scope=['admin'])}"
                response = await client.post(f"{API}/webhooks", json={"url": url, "events": ["*"]})
        assert response.status_code == 400
        detail = response.json()["error"]["details"][0]
        assert detail["field"] == "url" and detail["type"] == "unsafe_url"

    async def test_the_check_runs_again_at_send_time(
        self, database_url: str, keys: Keys, receiver: Receiver
    ) -> None:
        # Registered while loopback was allowed, and not sent yet (no dispatcher runs there)...
        lenient = webhook_settings(database_url, webhooks_enabled=False, engine_enabled=False)
        async with lifespan_app(create_app(lenient)) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create(scope=['admin'])}"
                endpoint = await subscribe(client, receiver.url)
                await client.post(f"{API}/webhooks/{endpoint['id']}/test")
                # ...then dispatched by a gateway whose allowlist no longer admits loopback.
                strict = webhook_settings(
                    database_url,
                    webhook_allowed_networks="",
                    webhook_retry_schedule="",
                    engine_enabled=False,
                )
                async with lifespan_app(create_app(strict)):
                    [delivery] = await settled(client, endpoint["id"], 1)
        assert receiver.requests == []
        assert delivery["status"] == "failed"
        assert delivery["attempts"][0]["error"].startswith("refused")

    async def test_redirects_are_not_followed(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        receiver.script = [307, 307, 307, 307]
        endpoint = await subscribe(gateway, receiver.url)
        await gateway.post(f"{API}/webhooks/{endpoint['id']}/test")
        [delivery] = await settled(gateway, endpoint["id"], 1)
        assert delivery["status"] == "failed"
        assert [a["statusCode"] for a in delivery["attempts"]] == [307, 307, 307, 307]


class TestDelivery:
    async def test_every_job_event_arrives_signed_with_the_job(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        endpoint = await subscribe(gateway, receiver.url)
        job_id = await submit(gateway, busybox("echo hi"))
        await wait_for(gateway, job_id)
        await receiver.wait_for(4)

        bodies = receiver.verified(endpoint["secret"])

        assert sorted(body["type"] for body in bodies) == sorted(
            ["job.created", "job.scheduled", "job.started", "job.completed"]
        )
        completed = next(body for body in bodies if body["type"] == "job.completed")
        assert completed["data"]["id"] == job_id
        assert completed["data"]["status"] == "completed"
        assert completed["data"]["results"]["exitCode"] == 0
        assert completed["timestamp"].endswith("Z")
        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert len(set(ids)) == 4 and all(i.startswith("msg_") for i in ids)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 40).verify(
                receiver.requests[0].body, receiver.requests[0].headers
            )

    async def test_only_subscribed_events_are_sent(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        endpoint = await subscribe(gateway, receiver.url, ["job.failed"])
        ok = await submit(gateway, busybox("true"))
        bad = await submit(gateway, busybox("exit 4"))
        await wait_for(gateway, ok)
        await wait_for(gateway, bad)
        await receiver.wait_for(1)
        await asyncio.sleep(0.5)
        [body] = receiver.verified(endpoint["secret"])
        assert body["type"] == "job.failed" and body["data"]["id"] == bad

    async def test_500s_and_timeouts_are_retried_and_every_attempt_is_listed(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        receiver.script = [500, 1.5, 200]
        endpoint = await subscribe(gateway, receiver.url)
        await gateway.post(f"{API}/webhooks/{endpoint['id']}/test")

        [delivery] = await settled(gateway, endpoint["id"], 1)

        assert delivery["status"] == "succeeded"
        attempts = delivery["attempts"]
        assert [a["statusCode"] for a in attempts] == [500, None, 200]
        assert attempts[1]["error"].startswith("timed out")
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        assert [b["type"] for b in receiver.verified(endpoint["secret"])] == ["webhook.test"] * 3

    async def test_a_delivery_that_keeps_failing_is_failed_then_replayed(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        receiver.script = [500] * 4
        endpoint = await subscribe(gateway, receiver.url)
        await gateway.post(f"{API}/webhooks/{endpoint['id']}/test")
        [delivery] = await settled(gateway, endpoint["id"], 1)
        assert delivery["status"] == "failed"
        assert len(delivery["attempts"]) == 4
        failed = await deliveries(gateway, endpoint["id"], status="failed")
        assert [d["id"] for d in failed] == [delivery["id"]]

        retried = await gateway.post(
            f"{API}/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/retry"
        )
        assert retried.status_code == 202
        [again] = await settled(gateway, endpoint["id"], 1)
        assert again["status"] == "succeeded"
        assert len(again["attempts"]) == 5

    async def test_an_endpoint_failing_too_long_is_disabled_with_the_reason(
        self, database_url: str, keys: Keys, receiver: Receiver
    ) -> None:
        receiver.script = [500] * 20
        settings = webhook_settings(database_url, webhook_disable_after=0.3)
        async with lifespan_app(create_app(settings)) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create(scope=['admin'])}"
                endpoint = await subscribe(client, receiver.url)
                await client.post(f"{API}/webhooks/{endpoint['id']}/test")
                await settled(client, endpoint["id"], 1)
                after = (await client.get(f"{API}/webhooks/{endpoint['id']}")).json()["data"]
                reenabled = await client.patch(
                    f"{API}/webhooks/{endpoint['id']}", json={"active": True}
                )
        assert after["active"] is False
        assert "answered 500" in after["disabledReason"]
        assert reenabled.json()["data"]["disabledReason"] is None

    async def test_rotation_signs_with_both_secrets_during_the_grace_period(
        self, gateway: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        endpoint = await subscribe(gateway, receiver.url)
        rotated = (await gateway.post(f"{API}/webhooks/{endpoint['id']}/rotate-secret")).json()
        new_secret = rotated["data"]["secret"]
        assert new_secret != endpoint["secret"]

        await gateway.post(f"{API}/webhooks/{endpoint['id']}/test")
        await receiver.wait_for(1)

        assert receiver.verified(new_secret)[0]["type"] == "webhook.test"
        assert receiver.verified(endpoint["secret"])[0]["type"] == "webhook.test"
        assert len(receiver.requests[0].headers["webhook-signature"].split(" ")) == 2


class TestOutbox:
    async def test_an_event_written_while_no_dispatcher_ran_is_sent_once_one_runs(
        self, database_url: str, keys: Keys, receiver: Receiver
    ) -> None:
        """A gateway that dies between the job change and the send loses nothing."""
        key = f"Bearer {await keys.create(scope=['admin'])}"
        down = webhook_settings(database_url, webhooks_enabled=False, engine_enabled=False)
        async with lifespan_app(create_app(down)) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = key
                endpoint = await subscribe(client, receiver.url, ["job.created"])
                job_id = await submit(client, busybox("true"))
        await asyncio.sleep(0.3)
        assert receiver.requests == []

        back = webhook_settings(database_url, engine_enabled=False)
        async with lifespan_app(create_app(back)):
            await receiver.wait_for(1)
        [body] = receiver.verified(endpoint["secret"])
        assert body["type"] == "job.created" and body["data"]["id"] == job_id

    async def test_a_rolled_back_change_sends_nothing(
        self, gateway: httpx.AsyncClient, receiver: Receiver, db: AsyncEngine
    ) -> None:
        from app.jobs import service as jobs_service
        from app.jobs.lifecycle import JobStatus
        from tests.factories import seed_jobs

        await subscribe(gateway, receiver.url)
        [job_id] = await seed_jobs(db, "alpha", [{"status": "running"}])
        with pytest.raises(RuntimeError):
            async with db.begin() as connection:
                row = (
                    (
                        await connection.execute(
                            sa.text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}
                        )
                    )
                    .mappings()
                    .one()
                )
                await jobs_service.transition(
                    connection, JobRecord.from_row(row), JobStatus.COMPLETED
                )
                raise RuntimeError("crash before commit")
        async with db.connect() as connection:
            count = await connection.scalar(sa.text("SELECT count(*) FROM webhook_deliveries"))
        assert count == 0

    async def test_two_dispatchers_never_send_one_attempt_twice(
        self, database_url: str, keys: Keys, receiver: Receiver
    ) -> None:
        settings = webhook_settings(database_url, engine_enabled=False)
        async with lifespan_app(create_app(settings)) as one, lifespan_app(create_app(settings)):
            transport = httpx.ASGITransport(app=one)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create(scope=['admin'])}"
                endpoint = await subscribe(client, receiver.url)
                for _ in range(30):
                    await client.post(f"{API}/webhooks/{endpoint['id']}/test")
                await receiver.wait_for(30)
                await asyncio.sleep(0.5)
        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert len(ids) == 30 == len(set(ids))
