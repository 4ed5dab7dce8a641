"""The dashboard's pages and files as HTTP serves them: outside the API, locked down by a
Content-Security-Policy, and absent from the OpenAPI document."""

from __future__ import annotations

from html.parser import HTMLParser

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


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


async def test_the_page_has_no_inline_script_or_style_and_every_file_it_names_is_served(
    app_client: httpx.AsyncClient,
) -> None:
    """What the policy would block must not be there: no <style>, no script without a src,
    no style attribute, no on* handler."""
    parser = _Tags()
    parser.feed((await app_client.get("/")).text)

    assert not [tag for tag, _ in parser.tags if tag == "style"]
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts and all(attrs.get("src") for attrs in scripts)
    inline = [
        (tag, name)
        for tag, attrs in parser.tags
        for name in attrs
        if name == "style" or name.startswith("on")
    ]
    assert inline == []
    files = [attrs["src"] for attrs in scripts] + [
        attrs["href"] for tag, attrs in parser.tags if tag == "link" and attrs.get("href")
    ]
    assert "/dashboard/static/pages.css" in files
    for path in files:
        assert path is not None
        assert (await app_client.get(path)).status_code == 200, path
