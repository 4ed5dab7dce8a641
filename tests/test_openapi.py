"""GET /openapi.json: a valid OpenAPI 3.1 document that matches the routes."""

from __future__ import annotations

import re

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from app import openapi
from app.application import API_ROUTES, create_app
from app.routing import ApiRoute, Operation, api
from app.settings import Settings
from tests.factories import API, Keys


async def test_document_is_valid_openapi_3_1(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)


def _served(app: Starlette) -> set[tuple[str, str]]:
    """(path, method) of every route the app serves under the API prefix."""
    return {
        (API + route.path, method)
        for mount in app.routes
        # Only the API is documented; the dashboard's pages are not part of it.
        if isinstance(mount, Mount) and mount.path == API
        for route in mount.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }


def _declared_undocumented(app: Starlette) -> set[tuple[str, str]]:
    return {
        (API + route.path, operation.method)
        for mount in app.routes
        if isinstance(mount, Mount) and mount.path == API
        for route in mount.routes
        if isinstance(route, ApiRoute)
        for operation in route.operations
        if not operation.documented
    }


def _documented() -> list[tuple[str, str, list[str] | None]]:
    """(path, method, scopes) of every operation in the document, scopes from its security
    (None: public; an empty list: any API key)."""
    return [
        (path, method.upper(), spec["security"][0]["bearerAuth"] if "security" in spec else None)
        for path, operations in openapi.document(API_ROUTES)["paths"].items()
        for method, spec in operations.items()
    ]


def _concrete(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: JOB_ID if m[1] == "job_id" else "nothing", path)


JOB_ID = "job_" + "0" * 24


class TestRouteTable:
    async def test_every_served_route_is_documented_and_every_documented_one_served(
        self, app_client: httpx.AsyncClient, settings: Settings
    ) -> None:
        document = (await app_client.get(f"{API}/openapi.json")).json()
        documented = {
            (path, method.upper())
            for path, operations in document["paths"].items()
            for method in operations
        }
        app = create_app(settings)

        assert _served(app) - _declared_undocumented(app) == documented

    async def test_every_declared_operation_is_documented(self, settings: Settings) -> None:
        assert _declared_undocumented(create_app(settings)) == set()

    @pytest.mark.parametrize(
        ("path", "method", "scopes"),
        _documented(),
        ids=[f"{method} {path.removeprefix(API)}" for path, method, _ in _documented()],
    )
    async def test_each_operation_enforces_the_scopes_it_documents(
        self,
        app_client: httpx.AsyncClient,
        keys: Keys,
        path: str,
        method: str,
        scopes: list[str] | None,
    ) -> None:
        url = _concrete(path)

        anonymous = await app_client.request(method, url)
        if scopes is not None:
            assert anonymous.status_code == 401
        else:
            assert anonymous.status_code not in (401, 403)
        scopes = scopes or []
        for missing in scopes:
            held = [scope for scope in scopes if scope != missing]
            key = await keys.create(scope=held)
            response = await app_client.request(method, url, headers=_bearer(key))
            assert response.status_code == 403
            assert response.json()["error"]["message"] == (
                f"This API key lacks the {missing!r} scope."
            )
        allowed = await app_client.request(
            method, url, headers=_bearer(await keys.create(scope=scopes))
        )
        assert allowed.status_code not in (401, 403)
        assert allowed.status_code < 500


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_request_schema_is_the_validating_model(app_client: httpx.AsyncClient) -> None:
    document = (await app_client.get(f"{API}/openapi.json")).json()
    spec = document["components"]["schemas"]["JobSpec"]
    assert set(spec["required"]) == {"provider", "image", "cpu", "memory", "storage", "duration"}
    assert spec["additionalProperties"] is False
    assert spec["properties"]["cpu"]["minimum"] == 1
    create = document["paths"][f"{API}/jobs"]["post"]
    assert set(create["responses"]) >= {"201", "400", "401", "403", "413", "415", "500"}
    cancel = document["paths"][f"{API}/jobs/{{job_id}}/cancel"]["post"]
    assert "JOB_ALREADY_FINISHED" in cancel["responses"]["409"]["description"]


class TestCompleteness:
    """Every status a route can answer is in its responses, with a typed body."""

    def test_post_jobs_documents_every_status_it_can_answer(self) -> None:
        responses = openapi.document(API_ROUTES)["paths"][f"{API}/jobs"]["post"]["responses"]
        assert set(responses) == {
            "201", "400", "401", "402", "403", "413", "415", "422", "429", "500", "503"
        }  # fmt: skip
        assert responses["503"]["description"] == "PROVIDER_UNAVAILABLE, SERVICE_UNAVAILABLE"
        assert "QUOTA_EXCEEDED" in responses["403"]["description"]

    def test_keyed_operations_document_429_and_database_ones_503(self) -> None:
        paths = openapi.document(API_ROUTES)["paths"]
        for path, operations in paths.items():
            for method, spec in operations.items():
                responses = spec["responses"]
                if "security" in spec:
                    assert "429" in responses, (method, path)
                if path != f"{API}/openapi.json":
                    assert "SERVICE_UNAVAILABLE" in responses["503"]["description"], (method, path)

    def test_health_and_the_document_itself_are_described(self) -> None:
        paths = openapi.document(API_ROUTES)["paths"]
        health = paths[f"{API}/health"]["get"]
        assert "security" not in health
        body = health["responses"]["200"]["content"]["application/json"]["schema"]
        assert body["properties"]["data"] == {"$ref": "#/components/schemas/HealthStatus"}
        assert set(health["responses"]) == {"200", "500", "503"}
        document = paths[f"{API}/openapi.json"]["get"]["responses"]["200"]
        schema = document["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/OpenApiDocument"}

    def test_meta_is_typed(self) -> None:
        document = openapi.document(API_ROUTES)
        listing = document["paths"][f"{API}/jobs"]["get"]["responses"]["200"]
        envelope = listing["content"]["application/json"]["schema"]
        assert envelope["properties"]["meta"] == {"$ref": "#/components/schemas/ListMeta"}
        assert "meta" in envelope["required"]
        assert envelope["additionalProperties"] is False
        pagination = document["components"]["schemas"]["Pagination"]
        assert {"total", "page", "limit", "pages"} <= set(pagination["required"])
        metrics = document["paths"][f"{API}/jobs/{{job_id}}/metrics"]["get"]["responses"]["200"]
        schema = metrics["content"]["application/json"]["schema"]
        assert schema["properties"]["meta"] == {"$ref": "#/components/schemas/MetricsMeta"}
        single = document["paths"][f"{API}/jobs/{{job_id}}"]["get"]["responses"]["200"]
        assert "meta" not in single["content"]["application/json"]["schema"]["properties"]


def test_a_download_documents_its_media_types_as_bytes() -> None:
    async def download(request: Request) -> Response:
        return Response(b"")

    route = api(
        "/things/{thing_id}/file",
        Operation(
            "GET",
            download,
            "getThingFile",
            "Download a thing",
            media_types=("text/plain", "application/gzip"),
        ),
    )
    document = openapi.document([route])
    validate(document)
    content = document["paths"][f"{API}/things/{{thing_id}}/file"]["get"]["responses"]["200"][
        "content"
    ]
    assert set(content) == {"text/plain", "application/gzip"}
    assert content["text/plain"]["schema"]["type"] == "string"
