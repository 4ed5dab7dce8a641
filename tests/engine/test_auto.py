"""`"provider": "auto"`: placement on the cheapest provider that can run the job, fail-over
before start, refusal before anything is stored, and POST /providers/quote.

Two fake Render networks (one adapter class configured twice under two names, each with its
own rates) and the local provider on the real container runtime compete for jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.admission.workload import workload_spec
from app.application import create_app
from app.jobs import repository as jobs_repository
from app.jobs import service as jobs_service
from app.jobs.record import JobRecord
from providers.akash.adapter import usd_per_hour
from providers.render import RenderProvider
from tests.engine.conftest import engine_settings, log_lines, submit, wait_for
from tests.factories import API, Keys
from tests.fakes.akash import running_fake
from tests.fakes.render import FakeRender
from tests.servers import lifespan_app, uvicorn_server

CHEAP, DEAR = 0.2, 0.5
GPU = "NVIDIA RTX 4090"
AKASH_KEY = "ac.sk.test." + "0" * 64


class Network:
    def __init__(self, name: str, rate: float) -> None:
        self.name, self.rate = name, rate
        self.fake = FakeRender(keys={"pk_test": "sk_test"}, step=0.05)
        self.url = ""

    def adapter(self) -> RenderProvider:
        return RenderProvider(
            name=self.name,
            api_url=self.url,
            public_key="pk_test",
            secret_key="sk_test",
            poll_interval=0.05,
            gpu_rates={GPU: self.rate},
            assign_timeout=1,
        )


@pytest.fixture
async def networks() -> AsyncIterator[tuple[Network, Network]]:
    cheap, dear = Network("render", CHEAP), Network("render-dear", DEAR)
    async with (
        uvicorn_server(cheap.fake.app()) as cheap.url,
        uvicorn_server(dear.fake.app()) as dear.url,
    ):
        yield cheap, dear


@pytest.fixture
async def client(
    database_url: str, keys: Keys, networks: tuple[Network, Network]
) -> AsyncIterator[httpx.AsyncClient]:
    # Local jobs cost $0.5/h at 500 millicores: dearer than the cheap network.
    settings = engine_settings(database_url, local_usd_per_cpu_hour=1.0)
    app = create_app(settings, extra_providers=[network.adapter() for network in networks])
    async with lifespan_app(app) as running:
        transport = httpx.ASGITransport(app=running, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


def auto_job(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "provider": "auto",
        "providers": ["local", "render", "render-dear"],
        "image": "busybox:latest",
        "cpu": 500,
        "memory": "64Mi",
        "storage": "1Gi",
        "duration": 120,
        "env": {"RENDER_FAKE_OUTPUT": "placed\nran", "RENDER_FAKE_SECONDS": "0.3"},
    }
    values.update(overrides)
    return values


def placements(job: dict[str, Any]) -> list[str]:
    return [event["message"] for event in job["events"] if event["type"] == "placement"]


async def test_auto_places_the_job_on_the_cheapest_provider(
    client: httpx.AsyncClient, networks: tuple[Network, Network]
) -> None:
    cheap, dear = networks
    response = await client.post(f"{API}/jobs", json=auto_job())
    assert response.status_code == 201, response.text
    assert response.json()["data"]["provider"] == "auto"
    job_id = response.json()["data"]["id"]
    job = await wait_for(client, job_id)

    assert job["status"] == "completed", job
    assert job["provider"] == "render"
    assert job["cost"]["projected"] == pytest.approx(CHEAP * 120 / 3600, abs=1e-6)
    assert await log_lines(client, job_id) == ["placed", "ran"]
    assert placements(job)[:3] == [
        "render at $0.2000/h: chosen, the cheapest of 3",
        "local at $0.5000/h: skipped, dearer than render",
        "render-dear at $0.5000/h: skipped, dearer than render",
    ]
    assert (len(cheap.fake.jobs), len(dear.fake.jobs)) == (1, 0)
    listed = (await client.get(f"{API}/jobs", params={"provider": "render"})).json()["data"]
    assert [entry["id"] for entry in listed] == [job_id]
    assert (await client.get(f"{API}/jobs", params={"provider": "local"})).json()["data"] == []


async def test_what_only_one_provider_can_run_goes_there(client: httpx.AsyncClient) -> None:
    """A command override: Render runs the image's entrypoint, so only local can take it."""
    job_id = await submit(client, auto_job(command=["sh", "-c", "echo from local"]))
    job = await wait_for(client, job_id)
    assert (job["status"], job["provider"]) == ("completed", "local")
    assert await log_lines(client, job_id) == ["from local"]
    assert placements(job)[0] == "local at $0.5000/h: chosen, the only one able to take it"
    assert any(m.startswith("render: skipped, cannot run it: command") for m in placements(job))


async def test_the_job_moves_on_when_the_cheapest_never_starts_it(
    client: httpx.AsyncClient, networks: tuple[Network, Network]
) -> None:
    cheap, dear = networks
    cheap.fake.nodes = []  # no node ever takes a job: not assigned within 1 s
    job_id = await submit(client, auto_job(providers=["render", "render-dear"]))
    job = await wait_for(client, job_id)

    assert job["status"] == "completed", job
    assert job["provider"] == "render-dear"
    assert await log_lines(client, job_id) == ["placed", "ran"]
    messages = placements(job)
    assert messages[0] == "render at $0.2000/h: chosen, the cheapest of 2"
    assert any(m.startswith("render: not_assigned: No Render node took the job") for m in messages)
    assert "render-dear at $0.5000/h: chosen, the only one able to take it" in messages
    assert "Submitted to render-dear, placed automatically." in messages
    assert [j.status for j in cheap.fake.jobs.values()] == ["FAILED"]
    assert [j.status for j in dear.fake.jobs.values()] == ["COMPLETED"]
    assert job["cost"]["projected"] == pytest.approx(DEAR * 120 / 3600, abs=1e-6)


async def test_when_every_candidate_failed_it_the_job_is_rejected_with_what_each_said(
    client: httpx.AsyncClient, networks: tuple[Network, Network]
) -> None:
    for network in networks:
        network.fake.nodes = []
    job_id = await submit(client, auto_job(providers=["render", "render-dear"]))
    job = await wait_for(client, job_id)
    assert job["status"] == "failed"
    assert job["results"]["reason"] == "rejected"
    message = job["results"]["message"]
    assert message.startswith("No provider would take it: ")
    assert "render: not_assigned: No Render node took the job within 1 s" in message
    assert "render-dear: not_assigned: No Render node took the job within 1 s" in message


async def test_a_spec_no_provider_can_run_answers_400_before_anything_is_stored(
    client: httpx.AsyncClient, networks: tuple[Network, Network]
) -> None:
    spec = auto_job(command=["sh"], gpu={"count": 1})
    response = await client.post(f"{API}/jobs", json=spec)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "No provider can run this job."
    assert {(d["field"], d["message"].split(":")[0]) for d in error["details"]} == {
        ("gpu", "local"),
        ("command", "render"),
        ("command", "render-dear"),
    }
    assert (await client.get(f"{API}/jobs")).json()["data"] == []
    assert all(not network.fake.jobs for network in networks)


async def test_a_price_limit_nobody_meets_answers_400(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/jobs", json=auto_job(maxPricePerHour=0.1))
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert {d["field"] for d in details} == {"maxPricePerHour"}
    assert len(details) == 3


async def test_a_price_limit_leaves_out_the_dearer(client: httpx.AsyncClient) -> None:
    job_id = await submit(client, auto_job(providers=["render-dear", "local"], maxPricePerHour=0.6))
    job = await wait_for(client, job_id)
    # Equal prices: the first listed wins.
    assert job["provider"] == "render-dear"
    assert job["config"]["maxPricePerHour"] == 0.6


async def test_placement_fields_need_auto(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/jobs", json=auto_job(provider="render", maxPricePerHour=1.0, providers=None)
    )
    assert response.status_code == 400
    assert "maxPricePerHour" in response.text
    response = await client.post(f"{API}/jobs", json=auto_job(providers=["render", "nowhere"]))
    assert response.status_code == 201  # an unknown name is a candidate that says no


async def test_quote_compares_without_submitting(
    client: httpx.AsyncClient, networks: tuple[Network, Network]
) -> None:
    spec = auto_job(gpu={"count": 2, "model": GPU})
    del spec["provider"]
    response = await client.post(f"{API}/providers/quote", json=spec)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["chosen"] == "render"
    assert data["usdPerHour"] == pytest.approx(2 * CHEAP)
    assert [(c["provider"], c["verdict"]) for c in data["candidates"]] == [
        ("render", "chosen"),
        ("render-dear", "eligible"),
        ("local", "incapable"),
    ]
    assert data["candidates"][2]["refusals"] == [
        {"field": "gpu", "message": "local cannot provide GPUs"}
    ]
    assert all(not network.fake.jobs for network in networks)
    assert (await client.get(f"{API}/jobs")).json()["data"] == []


async def test_quote_of_a_spec_nobody_can_run_chooses_nothing(client: httpx.AsyncClient) -> None:
    spec = auto_job(command=["sh"], gpu={"count": 1}, providers=["local", "render"])
    response = await client.post(f"{API}/providers/quote", json=spec)
    data = response.json()["data"]
    assert (data["chosen"], data["usdPerHour"]) == (None, None)
    assert {c["verdict"] for c in data["candidates"]} == {"incapable"}
    bad = await client.post(f"{API}/providers/quote", json={"image": "nginx"})
    assert bad.status_code == 400


async def test_a_job_nobody_bids_on_at_akash_moves_to_render(
    database_url: str, keys: Keys, networks: tuple[Network, Network]
) -> None:
    """Akash quotes its maximum price (here 100 uact per block, the cheapest), but no
    provider bids that low: after the bid timeout the deployment is closed and the job
    goes to the next cheapest, the Render network."""
    cheap, _ = networks
    async with running_fake(api_key=AKASH_KEY, bid_delay=0.1, start_delay=0.1) as akash:
        settings = engine_settings(
            database_url,
            akash_api_key=AKASH_KEY,
            akash_api_url=akash.console_url,
            akash_poll_interval=0.1,
            akash_bid_timeout=1.0,
            akash_max_price=100,
        )
        app = create_app(settings, extra_providers=[cheap.adapter()])
        async with lifespan_app(app) as running:
            transport = httpx.ASGITransport(app=running, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                client.headers["Authorization"] = f"Bearer {await keys.create()}"
                job_id = await submit(client, auto_job(providers=["akash", "render"]))
                job = await wait_for(client, job_id)
                lines = await log_lines(client, job_id)
        deployments = list(akash.network.deployments.values())

    assert (job["status"], job["provider"]) == ("completed", "render"), job
    assert lines == ["placed", "ran"]
    messages = placements(job)
    price = usd_per_hour(100)
    assert messages[0] == f"akash at ${price:.4f}/h: chosen, the cheapest of 2"
    assert any(m.startswith("akash: no_bids: No Akash provider bid") for m in messages)
    assert [d.state for d in deployments] == ["closed"]
    assert len(cheap.fake.jobs) == 1


async def test_a_restart_between_submitting_and_storing_the_handle_starts_no_second_job(
    database_url: str, db: AsyncEngine, keys: Keys, networks: tuple[Network, Network]
) -> None:
    """The engine chose Render and submitted there, then died before storing the handle:
    the next engine submits to the chosen provider again, which adopts the first job."""
    cheap, dear = networks
    settings = engine_settings(database_url, engine_enabled=False)
    api = create_app(settings, extra_providers=[n.adapter() for n in networks])
    async with lifespan_app(api) as api_only:
        transport = httpx.ASGITransport(app=api_only, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            job_id = await submit(client, auto_job(providers=["render", "render-dear"]))
    async with database.transaction(db) as connection:
        row = await jobs_repository.update_job(connection, job_id, {"provider": "render"})
    crashed = cheap.adapter()
    try:
        await crashed.submit(workload_spec(jobs_service.spec_document(JobRecord.from_row(row))))
    finally:
        await crashed.aclose()

    app = create_app(engine_settings(database_url), extra_providers=[n.adapter() for n in networks])
    async with lifespan_app(app) as running:
        transport = httpx.ASGITransport(app=running, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            job = await wait_for(client, job_id)
            lines = await log_lines(client, job_id)
    assert (job["status"], job["provider"]) == ("completed", "render")
    assert lines == ["placed", "ran"]
    assert (len(cheap.fake.jobs), len(dear.fake.jobs)) == (1, 0)
