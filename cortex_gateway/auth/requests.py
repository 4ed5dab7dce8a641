"""Authorizes an HTTP request: a Bearer key with the scope the route needs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request

from cortex_gateway import errors
from cortex_gateway.auth import service
from cortex_gateway.auth.scopes import Scope, grants


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise errors.Unauthorized("Missing API key: send Authorization: Bearer <key>.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthorized("Malformed Authorization header: use Bearer <key>.")
    return token


async def require_scope(
    connection: AsyncConnection, request: Request, scope: Scope
) -> service.AuthContext:
    auth = await service.authenticate(connection, bearer_token(request))
    if auth is None:
        raise errors.Unauthorized("Invalid or revoked API key.")
    if not grants(list(auth.scopes), scope):
        raise errors.Forbidden(f"This API key lacks the {scope.value!r} scope.")
    return auth
