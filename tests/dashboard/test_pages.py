"""The dashboard's pages and files as HTTP serves them: outside the API, locked down by a
Content-Security-Policy, and absent from the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import API


@pytest.mark.parametrize("path", ["/", "/dashboard"])
async def test_the_page_is_served_with_a_strict_policy(
    app_client: httpx.AsyncClient, path: str
) -> None:
    response = await app_client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/dashboard/static/js/main.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert (await app_client.head(path)).status_code == 200


async def test_scripts_and_styles_are_served_as_such(app_client: httpx.AsyncClient) -> None:
    script = await app_client.get("/dashboard/static/js/main.js")
    style = await app_client.get("/dashboard/static/dashboard.css")

    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["x-content-type-options"] == "nosniff"
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")


async def test_a_missing_file_is_a_404_in_the_error_envelope(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get("/dashboard/static/js/nothing.js")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_the_pages_are_not_part_of_the_api_document(app_client: httpx.AsyncClient) -> None:
    paths = (await app_client.get(f"{API}/openapi.json")).json()["paths"]

    assert all(path.startswith(API) for path in paths)
