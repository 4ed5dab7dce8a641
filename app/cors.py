"""Cross-origin access for browsers: which web origins may call the API and open its streams
(`CORTEX_CORS_ORIGINS`), the preflights that ask, and the grants on the responses.

An exact origin (`https://app.example.com`) is granted as itself, with credentials allowed.
`*` grants every origin, but only requests without credentials (the Fetch standard never
honours `*` with credentials, and the gateway does not send credentials with it either): a
browser calling with `Authorization` in its own header needs no credentials mode, so `*`
serves a public page well. Nothing listed (the default): no grant, no CORS headers.

Starlette's CORSMiddleware does most of this, but answers a refused preflight in plain text
rather than the API's error envelope, and cannot grant exact origins credentials beside a `*`
for the rest; this middleware is small enough to own.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import envelope, errors

ANY = "*"
MAX_ORIGINS = 100
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# What a page may send beyond the CORS-safelisted headers, and what it may read back.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID")
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After", "RateLimit-Policy", "RateLimit")
_SAFELISTED = frozenset({"accept", "accept-language", "content-language", "content-type"})
# Seconds a browser may reuse a preflight's answer.
MAX_AGE = 600


def parse_origins(text: str) -> tuple[str, ...]:
    """`CORTEX_CORS_ORIGINS` -> the origins, in order; ValueError names a bad entry. Each is
    `*` or exactly what a browser sends in `Origin`: scheme://host[:port], no path."""
    origins: list[str] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        if entry != ANY:
            parts = urlsplit(entry)
            exact = f"{parts.scheme}://{parts.netloc}"
            if parts.scheme not in ("http", "https") or not parts.hostname or entry != exact:
                raise ValueError(
                    f"{entry!r} is not an origin: give scheme://host[:port] with no path or"
                    " trailing slash, e.g. https://app.example.com, or *"
                )
            if entry != entry.lower():
                raise ValueError(f"{entry!r}: browsers send origins in lower case")
        origins.append(entry)
    if len(origins) > MAX_ORIGINS:
        raise ValueError(f"at most {MAX_ORIGINS} origins, not {len(origins)}")
    return tuple(dict.fromkeys(origins))


@dataclass(frozen=True)
class Policy:
    origins: frozenset[str]
    any_origin: bool

    @classmethod
    def from_origins(cls, origins: tuple[str, ...]) -> Policy:
        return cls(frozenset(o for o in origins if o != ANY), ANY in origins)

    def grant(self, origin: str) -> dict[str, str]:
        """The headers that let `origin` read a response; none when it may not."""
        if origin in self.origins:
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
            }
        if self.any_origin:
            return {"Access-Control-Allow-Origin": ANY}
        return {}

    @property
    def grants_any(self) -> bool:
        return bool(self.origins) or self.any_origin


class CORSMiddleware:
    """Grants on every response under `prefix` to a request with an allowed `Origin`, errors
    and streams included; answers preflights there. Pure ASGI, so streams pass untouched."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...], prefix: str) -> None:
        self.app = app
        self.policy = Policy.from_origins(origins)
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        inside = path == self.prefix or path.startswith(self.prefix + "/")
        if scope["type"] != "http" or not inside:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, headers)(scope, receive, send)
            return
        if not self.policy.grants_any:
            await self.app(scope, receive, send)
            return
        grant = self.policy.grant(origin)

        async def send_with_grant(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers.add_vary_header("Origin")
                if grant:
                    response_headers.update(grant)
                    response_headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_grant)

    def _preflight(self, origin: str, headers: Headers) -> ASGIApp:
        method = headers["access-control-request-method"]
        asked = [
            name.strip().lower()
            for name in headers.get("access-control-request-headers", "").split(",")
            if name.strip()
        ]
        allowed_headers = {name.lower() for name in ALLOWED_HEADERS} | _SAFELISTED
        grant = self.policy.grant(origin)
        refusal = None
        if not grant:
            refusal = f"The origin {origin} may not call this API from a browser."
            field = "Origin"
        elif method not in ALLOWED_METHODS:
            refusal = f"A browser may not send {method} requests here."
            field = "Access-Control-Request-Method"
        elif unknown := [name for name in asked if name not in allowed_headers]:
            refusal = f"A browser may not send the header {unknown[0]} here."
            field = "Access-Control-Request-Headers"
        if refusal is not None:
            error = errors.Forbidden(
                refusal,
                [{"field": field, "message": refusal, "type": "cors_refused"}],
            )
            return envelope.error(error, headers={"Vary": "Origin"})
        return Response(
            status_code=204,
            headers={
                **grant,
                "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
                "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
                "Access-Control-Max-Age": str(MAX_AGE),
                "Vary": "Origin",
            },
        )
