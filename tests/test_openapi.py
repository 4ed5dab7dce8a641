"""GET /openapi.json: a valid OpenAPI 3.1 document that matches the routes."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate
from starlette.routing import Mount

from app.application import create_app
from app.settings import Settings
from tests.factories import API


async def test_document_is_valid_openapi_3_1(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_every_api_route_is_documented(
    app_client: httpx.AsyncClient, settings: Settings
) -> None:
    document = (await app_client.get(f"{API}/openapi.json")).json()
    documented = {
        (path.replace("{job_id}", "{job_id}"), method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    app = create_app(settings)
    served = {
        (API + route.path, method)
        for mount in app.routes
        # Only the API is documented; the dashboard's pages are not part of it.
        if isinstance(mount, Mount) and mount.path == API
        for route in mount.routes
        for method in route.methods - {"HEAD"}
        if not route.path.endswith((".json", "/health"))
    }
    assert served == documented


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
