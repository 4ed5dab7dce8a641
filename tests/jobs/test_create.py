"""POST /jobs: what is accepted, what is refused and why."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.factories import API, job_spec

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class TestCreateJob:
    async def test_answers_201_with_the_pending_job(self, client: httpx.AsyncClient) -> None:
        spec = job_spec(
            provider="local",
            image="nginx:alpine",
            cpu=1000,
            memory="512Mi",
            storage="1Gi",
            duration=3600,
            env={"DEBUG": "true"},
            ports=[{"port": 80, "expose": True}],
        )
        response = await client.post(f"{API}/jobs", json=spec)

        assert response.status_code == 201
        body = response.json()
        assert body["success"] is True
        job = body["data"]
        assert re.match(r"^job_[0-9a-f]{12,}$", job["id"])
        assert job["provider"] == "local"
        assert job["status"] == "pending"
        assert (job["image"], job["cpu"], job["memory"], job["storage"], job["duration"]) == (
            "nginx:alpine",
            1000,
            "512Mi",
            "1Gi",
            3600,
        )
        assert ISO_UTC.match(job["createdAt"])
        assert job["startedAt"] is None and job["endedAt"] is None
        assert job["cost"] == {"current": 0.0, "projected": 0.0, "currency": "USD"}
        assert job["endpoints"] == []
        assert job["config"]["env"] == {"DEBUG": "true"}
        assert job["config"]["ports"] == [{"port": 80, "expose": True, "protocol": "tcp"}]
        assert job["results"]["exitCode"] is None and job["results"]["outputUrl"] is None
        assert [event["type"] for event in job["events"]] == ["created"]

    async def test_the_job_is_stored_as_answered(self, client: httpx.AsyncClient) -> None:
        spec = job_spec(
            command=["sh", "-c"],
            args=["echo hi"],
            volumes=[{"name": "data", "mountPath": "/data", "size": "1Gi", "readOnly": True}],
        )
        created = (await client.post(f"{API}/jobs", json=spec)).json()["data"]
        fetched = (await client.get(f"{API}/jobs/{created['id']}")).json()["data"]
        assert fetched == created
        assert fetched["config"]["volumes"] == [
            {"name": "data", "mountPath": "/data", "size": "1Gi", "readOnly": True}
        ]

    @pytest.mark.parametrize(
        "image",
        [
            "busybox",
            "nginx:alpine",
            "ghcr.io/org/team/app:1.2.3",
            "localhost:5000/app",
            "registry.example.com:443/a/b_c.d-e:v1",
            "alpine@sha256:" + "a" * 64,
            "alpine:3.20@sha256:" + "b" * 64,
        ],
    )
    async def test_accepts_image_references(self, client: httpx.AsyncClient, image: str) -> None:
        response = await client.post(f"{API}/jobs", json=job_spec(image=image))
        assert response.status_code == 201, response.text

    @pytest.mark.parametrize("memory", ["512Mi", "2Gi", "1G", "64M", "100000000", "1.5Gi"])
    async def test_accepts_quantities(self, client: httpx.AsyncClient, memory: str) -> None:
        response = await client.post(f"{API}/jobs", json=job_spec(memory=memory, storage=memory))
        assert response.status_code == 201, response.text

    @pytest.mark.parametrize("provider", ["akash", "render", "golem"])
    async def test_a_network_without_an_adapter_answers_503(
        self, client: httpx.AsyncClient, provider: str
    ) -> None:
        # A spec the network could run (Golem needs an absolute command, Render runs the
        # image's own): what it cannot run is a 400 whatever its health.
        command = ["/bin/sh", "-c", "true"] if provider == "golem" else None
        spec = job_spec(provider=provider, command=command)
        response = await client.post(f"{API}/jobs", json=spec)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "PROVIDER_UNAVAILABLE"
        assert provider in error["message"]
        assert [detail["field"] for detail in error["details"]] == ["provider"]
        listing = await client.get(f"{API}/jobs")
        assert listing.json()["meta"]["pagination"]["total"] == 0

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"provider": "aws"}, "provider"),
            ({"provider": None}, "provider"),
            ({"image": "Not An Image"}, "image"),
            ({"image": ""}, "image"),
            ({"image": "nginx:"}, "image"),
            ({"image": 7}, "image"),
            ({"cpu": 0}, "cpu"),
            ({"cpu": -5}, "cpu"),
            ({"cpu": 1.5}, "cpu"),
            ({"cpu": "1000"}, "cpu"),
            ({"cpu": True}, "cpu"),
            ({"cpu": 10_000_000}, "cpu"),
            ({"memory": "lots"}, "memory"),
            ({"memory": "512MB"}, "memory"),
            ({"memory": "1Ki"}, "memory"),
            ({"memory": "100Ti"}, "memory"),
            ({"memory": 512}, "memory"),
            ({"storage": "-1Gi"}, "storage"),
            ({"duration": 0}, "duration"),
            ({"duration": 3.5}, "duration"),
            ({"duration": 10**9}, "duration"),
            ({"env": {"GOOD": 1}}, "env.GOOD"),
            ({"env": {"1BAD": "x"}}, "env"),
            ({"env": ["A=1"]}, "env"),
            ({"ports": [{"port": 0}]}, "ports[0].port"),
            ({"ports": [{"port": 65536, "expose": True}]}, "ports[0].port"),
            ({"ports": [{"port": 80, "expose": "yes"}]}, "ports[0].expose"),
            ({"ports": [{"port": 80, "public": True}]}, "ports[0].public"),
            ({"ports": [{"port": 80}, {"port": 80}]}, "ports"),
            ({"volumes": [{"name": "d", "mountPath": "relative"}]}, "volumes[0].mountPath"),
            ({"volumes": [{"name": "d", "mountPath": "/a/../etc"}]}, "volumes[0].mountPath"),
            ({"volumes": [{"name": "Bad_Name", "mountPath": "/d"}]}, "volumes[0].name"),
            ({"volumes": [{"name": "d", "hostPath": "/etc"}]}, "volumes[0].hostPath"),
            ({"command": []}, "command"),
            ({"command": "echo hi"}, "command"),
            ({"args": [1, 2]}, "args[0]"),
            ({"gpu": 1}, "gpu"),
        ],
    )
    async def test_refuses_bad_fields_naming_them(
        self, client: httpx.AsyncClient, change: dict[str, Any], field: str
    ) -> None:
        response = await client.post(f"{API}/jobs", json=job_spec(**change))

        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert field in [detail["field"] for detail in error["details"]], error["details"]

    @pytest.mark.parametrize(
        "missing", ["provider", "image", "cpu", "memory", "storage", "duration"]
    )
    async def test_refuses_a_missing_required_field(
        self, client: httpx.AsyncClient, missing: str
    ) -> None:
        spec = job_spec()
        del spec[missing]
        response = await client.post(f"{API}/jobs", json=spec)
        assert response.status_code == 400
        assert response.json()["error"]["details"][0] == {
            "field": missing,
            "message": "field required",
            "type": "missing",
        }

    async def test_integral_numbers_are_taken_as_integers(self, client: httpx.AsyncClient) -> None:
        spec = job_spec(cpu=1000.0, duration=3600.0, ports=[{"port": 80.0, "expose": True}])
        response = await client.post(f"{API}/jobs", json=spec)
        assert response.status_code == 201, response.text
        job = response.json()["data"]
        assert (job["cpu"], job["duration"], job["config"]["ports"][0]["port"]) == (1000, 3600, 80)
        assert isinstance(job["cpu"], int) and isinstance(job["duration"], int)

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"cpu": 1000.5}, "cpu"),
            ({"duration": 3600.25}, "duration"),
            ({"ports": [{"port": 80.5}]}, "ports[0].port"),
            ({"gpu": {"count": 1.5}}, "gpu.count"),
        ],
    )
    async def test_fractional_numbers_are_refused_where_integers_go(
        self, client: httpx.AsyncClient, change: dict[str, Any], field: str
    ) -> None:
        response = await client.post(f"{API}/jobs", json=job_spec(**change))
        assert response.status_code == 400
        [detail] = response.json()["error"]["details"]
        assert detail["field"] == field
        assert detail["type"] == "int_from_float"
        assert detail["message"].startswith("Input should be a whole number, got ")

    async def test_reports_every_bad_field_at_once(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"{API}/jobs", json=job_spec(cpu=0, memory="x", duration=-1, bogus=True)
        )
        fields = {detail["field"] for detail in response.json()["error"]["details"]}
        assert fields == {"cpu", "memory", "duration", "bogus"}

    async def test_unknown_provider_lists_the_registered_ones(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(f"{API}/jobs", json=job_spec(provider="aws"))
        message = response.json()["error"]["details"][0]["message"]
        assert "akash, golem, local, render" in message
