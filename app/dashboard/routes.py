"""Serves the dashboard at `/` and `/dashboard`, and its files under `/dashboard/static/`.

The page is plain HTML, CSS and JavaScript modules (no build step). Its Content-Security-Policy
allows only this origin's scripts, styles and API, so nothing injected can run; the page itself
never inserts API text as HTML either.
"""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from app.routing import resource

STATIC = Path(__file__).parent / "static"
STATIC_PATH = "/dashboard/static"

SECURITY_HEADERS = {
    "Content-Security-Policy": "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    ),
    "X-Content-Type-Options": "nosniff",
    # Stream URLs carry a token: never hand them to another site.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def page(request: Request) -> Response:
    return FileResponse(
        STATIC / "index.html",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


class _StaticFiles(StaticFiles):
    """Static files with the page's headers; revalidated, so an upgrade shows at once."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update({**SECURITY_HEADERS, "Cache-Control": "no-cache"})
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


routes: list[BaseRoute] = [
    resource("/", GET=page),
    resource("/dashboard", GET=page),
    Mount(STATIC_PATH, app=_StaticFiles(directory=STATIC), name="dashboard-static"),
]
