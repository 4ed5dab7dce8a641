"""Job templates: CRUD under /jobs/templates, and jobs made from them with overrides."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import API, Keys, job_spec

TEMPLATES = f"{API}/jobs/templates"
ALL_SCOPES = ("jobs:read", "jobs:write", "templates:read", "templates:write")


@pytest.fixture
async def client(app_client: httpx.AsyncClient, keys: Keys) -> httpx.AsyncClient:
    app_client.headers["Authorization"] = f"Bearer {await keys.create(scope=ALL_SCOPES)}"
    return app_client


async def create(client: httpx.AsyncClient, name: str = "web", **config: Any) -> dict[str, Any]:
    body = {"name": name, "description": "a web server", "config": job_spec(**config)}
    response = await client.post(TEMPLATES, json=body)
    assert response.status_code == 201, response.text
    template: dict[str, Any] = response.json()["data"]
    return template


async def from_template(
    client: httpx.AsyncClient, template_id: str, overrides: dict[str, Any] | None = None
) -> httpx.Response:
    body = {} if overrides is None else {"overrides": overrides}
    return await client.post(f"{API}/jobs/from-template/{template_id}", json=body)


def fields(response: httpx.Response) -> list[str]:
    return [detail["field"] for detail in response.json()["error"]["details"]]


class TestCreateTemplate:
    async def test_answers_201_with_the_template(self, client: httpx.AsyncClient) -> None:
        template = await create(client, env={"MODE": "prod"}, ports=[{"port": 80}])

        assert template["id"].startswith("tpl_")
        assert template["name"] == "web"
        assert template["description"] == "a web server"
        assert template["config"]["image"] == "busybox:latest"
        assert template["config"]["env"] == {"MODE": "prod"}
        assert template["config"]["ports"] == [{"port": 80, "expose": False, "protocol": "tcp"}]
        assert list(template["config"])[:7] == [
            "provider",
            "image",
            "cpu",
            "memory",
            "storage",
            "duration",
            "env",
        ]
        fetched = (await client.get(f"{TEMPLATES}/{template['id']}")).json()["data"]
        assert fetched == template

    async def test_the_config_is_checked_as_post_jobs_checks_it(
        self, client: httpx.AsyncClient
    ) -> None:
        config = job_spec(cpu=0, memory="lots", ports=[{"port": 80}, {"port": 80}], extra=1)
        response = await client.post(TEMPLATES, json={"name": "bad", "config": config})

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        assert sorted(fields(response)) == [
            "config.cpu",
            "config.extra",
            "config.memory",
            "config.ports",
        ]
        # The very messages POST /jobs gives for the same spec.
        as_job = await client.post(f"{API}/jobs", json=config)
        assert sorted(d["message"] for d in as_job.json()["error"]["details"]) == sorted(
            d["message"] for d in response.json()["error"]["details"]
        )
        assert (await client.get(TEMPLATES)).json()["meta"]["pagination"]["total"] == 0

    async def test_a_config_its_provider_cannot_run_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            TEMPLATES, json={"name": "gpu", "config": job_spec(gpu={"count": 1})}
        )

        assert response.status_code == 400
        assert fields(response) == ["config.gpu"]
        assert response.json()["error"]["details"][0]["type"] == "provider_capability"

    async def test_name_and_config_are_required(self, client: httpx.AsyncClient) -> None:
        response = await client.post(TEMPLATES, json={"name": "  "})
        assert response.status_code == 400
        assert sorted(fields(response)) == ["config", "name"]

    async def test_a_name_is_unique_within_an_account(
        self, client: httpx.AsyncClient, keys: Keys
    ) -> None:
        await create(client, name="web")

        clash = await client.post(TEMPLATES, json={"name": "web", "config": job_spec()})

        assert clash.status_code == 409
        assert clash.json()["error"]["code"] == "TEMPLATE_NAME_TAKEN"
        assert fields(clash) == ["name"]
        other = {"Authorization": f"Bearer {await keys.create(account='beta', scope=ALL_SCOPES)}"}
        elsewhere = await client.post(
            TEMPLATES, json={"name": "web", "config": job_spec()}, headers=other
        )
        assert elsewhere.status_code == 201

    async def test_templates_need_their_scopes(self, client: httpx.AsyncClient, keys: Keys) -> None:
        template = await create(client)
        jobs_only = {
            "Authorization": f"Bearer {await keys.create(scope=['jobs:read', 'jobs:write'])}"
        }
        reader = {"Authorization": f"Bearer {await keys.create(scope=['templates:read'])}"}

        assert (await client.get(TEMPLATES, headers=jobs_only)).status_code == 403
        assert (await client.get(TEMPLATES, headers=reader)).status_code == 200
        refused = await client.post(
            TEMPLATES, json={"name": "x", "config": job_spec()}, headers=reader
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "FORBIDDEN"
        # A job from a template takes jobs:write and templates:read.
        made = await client.post(
            f"{API}/jobs/from-template/{template['id']}", json={}, headers=jobs_only
        )
        assert made.status_code == 403
        made = await client.post(
            f"{API}/jobs/from-template/{template['id']}", json={}, headers=reader
        )
        assert made.status_code == 403


class TestListTemplates:
    async def test_pages_through_the_accounts_templates(
        self, client: httpx.AsyncClient, keys: Keys
    ) -> None:
        for name in ("c", "a", "b"):
            await create(client, name=name)
        other = {"Authorization": f"Bearer {await keys.create(account='beta', scope=ALL_SCOPES)}"}
        await client.post(TEMPLATES, json={"name": "z", "config": job_spec()}, headers=other)

        first = (await client.get(TEMPLATES, params={"limit": 2, "sort": "name:asc"})).json()
        second = (
            await client.get(TEMPLATES, params={"limit": 2, "page": 2, "sort": "name:asc"})
        ).json()

        assert [t["name"] for t in first["data"]] == ["a", "b"]
        assert [t["name"] for t in second["data"]] == ["c"]
        assert first["meta"]["pagination"] == {"total": 3, "page": 1, "limit": 2, "pages": 2}
        newest_first = (await client.get(TEMPLATES)).json()["data"]
        assert [t["name"] for t in newest_first] == ["b", "a", "c"]

    async def test_bad_parameters_are_400(self, client: httpx.AsyncClient) -> None:
        response = await client.get(TEMPLATES, params={"sort": "cpu:asc", "limit": 0, "x": 1})
        assert response.status_code == 400
        assert sorted(fields(response)) == ["limit", "sort", "x"]


class TestReadUpdateDeleteTemplate:
    async def test_another_accounts_template_is_404(
        self, client: httpx.AsyncClient, keys: Keys
    ) -> None:
        template = await create(client)
        other = {"Authorization": f"Bearer {await keys.create(account='beta', scope=ALL_SCOPES)}"}
        url = f"{TEMPLATES}/{template['id']}"

        for response in (
            await client.get(url, headers=other),
            await client.patch(url, json={"name": "mine"}, headers=other),
            await client.delete(url, headers=other),
            await client.post(f"{API}/jobs/from-template/{template['id']}", json={}, headers=other),
            await client.get(f"{TEMPLATES}/tpl_0000000000000000"),
            await client.get(f"{TEMPLATES}/not-an-id"),
        ):
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "TEMPLATE_NOT_FOUND"
        assert (await client.get(url)).json()["data"]["name"] == "web"

    async def test_update_renames_and_replaces_the_config(self, client: httpx.AsyncClient) -> None:
        template = await create(client, env={"A": "1"})
        url = f"{TEMPLATES}/{template['id']}"

        response = await client.patch(
            url, json={"name": "api", "config": job_spec(image="nginx:alpine")}
        )

        assert response.status_code == 200
        updated = response.json()["data"]
        assert updated["name"] == "api"
        assert updated["description"] == "a web server"
        assert updated["config"]["image"] == "nginx:alpine"
        assert updated["config"]["env"] == {}, "a new config replaces the old one whole"
        # Times are shown to the second: an update within the same second shows the same time.
        assert updated["updatedAt"] >= template["updatedAt"]
        assert updated["createdAt"] == template["createdAt"]
        cleared = await client.patch(url, json={"description": None})
        assert cleared.json()["data"]["description"] is None

    async def test_update_is_checked(self, client: httpx.AsyncClient) -> None:
        await create(client, name="taken")
        template = await create(client, name="web")
        url = f"{TEMPLATES}/{template['id']}"

        clash = await client.patch(url, json={"name": "taken"})
        assert clash.status_code == 409
        assert clash.json()["error"]["code"] == "TEMPLATE_NAME_TAKEN"
        bad = await client.patch(url, json={"config": job_spec(duration=-1)})
        assert bad.status_code == 400
        assert fields(bad) == ["config.duration"]
        null = await client.patch(url, json={"name": None})
        assert null.status_code == 400
        assert fields(null) == ["name"]
        assert (await client.get(url)).json()["data"] == template

    async def test_delete_leaves_the_jobs_made_from_it(self, client: httpx.AsyncClient) -> None:
        template = await create(client)
        job = (await from_template(client, template["id"])).json()["data"]

        deleted = await client.delete(f"{TEMPLATES}/{template['id']}")

        assert deleted.status_code == 204
        assert (await client.get(f"{TEMPLATES}/{template['id']}")).status_code == 404
        kept = (await client.get(f"{API}/jobs/{job['id']}")).json()["data"]
        assert kept["templateId"] == template["id"]


class TestJobFromTemplate:
    async def test_without_overrides_the_job_is_the_template(
        self, client: httpx.AsyncClient
    ) -> None:
        template = await create(client, env={"MODE": "prod"}, command=["sh", "-c", "true"])

        response = await from_template(client, template["id"])

        assert response.status_code == 201
        job = response.json()["data"]
        assert job["status"] == "pending"
        assert job["templateId"] == template["id"]
        assert (job["image"], job["cpu"], job["memory"]) == ("busybox:latest", 500, "64Mi")
        assert job["config"]["env"] == {"MODE": "prod"}
        assert job["config"]["command"] == ["sh", "-c", "true"]
        fetched = (await client.get(f"{API}/jobs/{job['id']}")).json()["data"]
        assert fetched["templateId"] == template["id"]
        listed = (await client.get(f"{API}/jobs")).json()["data"]
        assert [(j["id"], j["templateId"]) for j in listed] == [(job["id"], template["id"])]

    async def test_objects_merge_by_key_lists_and_values_replace(
        self, client: httpx.AsyncClient
    ) -> None:
        template = await create(
            client,
            env={"KEEP": "1", "CHANGE": "old", "DROP": "x"},
            ports=[{"port": 80, "expose": True}, {"port": 443}],
            args=["--verbose"],
        )

        response = await from_template(
            client,
            template["id"],
            {
                "cpu": 2000,
                "memory": "1Gi",
                "env": {"CHANGE": "new", "ADD": "2", "DROP": None},
                "ports": [{"port": 8080}],
                "args": None,
            },
        )

        assert response.status_code == 201, response.text
        job = response.json()["data"]
        assert (job["cpu"], job["memory"], job["storage"]) == (2000, "1Gi", "1Gi")
        assert job["config"]["env"] == {"KEEP": "1", "CHANGE": "new", "ADD": "2"}
        assert job["config"]["ports"] == [{"port": 8080, "expose": False, "protocol": "tcp"}]
        assert job["config"]["args"] is None
        unchanged = (await client.get(f"{TEMPLATES}/{template['id']}")).json()["data"]
        assert unchanged["config"] == template["config"]

    async def test_the_result_is_validated_as_any_job(self, client: httpx.AsyncClient) -> None:
        template = await create(client)

        response = await from_template(
            client,
            template["id"],
            {"cpu": "lots", "env": {"bad name": "x"}, "ports": [{"port": 0}], "nope": 1},
        )

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        assert sorted(fields(response)) == [
            "overrides.cpu",
            "overrides.env",
            "overrides.nope",
            "overrides.ports[0].port",
        ]
        assert (await client.get(f"{API}/jobs")).json()["data"] == []

    async def test_a_required_field_cannot_be_removed(self, client: httpx.AsyncClient) -> None:
        template = await create(client)
        response = await from_template(client, template["id"], {"image": None})
        assert response.status_code == 400
        assert fields(response) == ["overrides.image"]

    async def test_the_body_must_be_an_object_of_overrides(self, client: httpx.AsyncClient) -> None:
        template = await create(client)
        url = f"{API}/jobs/from-template/{template['id']}"

        assert (await client.post(url, json={"overrides": [1]})).status_code == 400
        assert (await client.post(url, json={"cpu": 1})).status_code == 400
        assert (await client.post(url)).status_code == 201, "no body: no overrides"
