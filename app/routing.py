"""The route table: each route declares its operations, and each operation everything said
about it (the scopes it needs, what it accepts and answers, the errors it can produce).

The OpenAPI document (app/openapi.py) is built by walking these declarations, and
`app.auth.requests.require_scope` reads the scopes from the operation serving the request, so
what the document says and what the gateway enforces come from one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.auth.scopes import Scope
from app.errors import GatewayError

Handler = Callable[[Request], Awaitable[Response]]

# Where the operation serving a request is kept in its ASGI scope.
_OPERATION_KEY = "cortex.operation"


@dataclass(frozen=True)
class Operation:
    """One method of one route. `scopes` are all needed, checked in order (the first missing
    one is named in the 403); none means the operation is public."""

    method: str
    handler: Handler
    operation_id: str
    summary: str
    scopes: tuple[Scope, ...] = ()
    response: type[BaseModel] | None = None
    status: int = 200
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    list_response: bool = False
    # The envelope's `meta`, when the operation answers one (a listing's pagination).
    meta: type[BaseModel] | None = None
    errors: tuple[type[GatewayError], ...] = ()
    # Takes an Idempotency-Key header.
    idempotent: bool = False
    # Needs a valid API key, with whatever scopes (when `scopes` is empty).
    any_key: bool = False
    # False only for what the document should not describe.
    documented: bool = True
    # Answers 503 SERVICE_UNAVAILABLE while the database cannot be reached.
    uses_database: bool = True
    # False: `response` is the body itself, not the {"success", "data"} envelope's data.
    enveloped: bool = True
    # The success answer's media types when it is not JSON (a download): each documented as
    # bytes, e.g. ("text/plain", "application/gzip"); `response` is then left unset.
    media_types: tuple[str, ...] = ()
    # The request body's media types when it is bytes, not a JSON `request` (an upload).
    body_media_types: tuple[str, ...] = ()


class ApiRoute(Route):
    """One Route per path, whatever the number of methods, so that a 405 lists them all."""

    def __init__(self, path: str, operations: tuple[Operation, ...]) -> None:
        by_method = {operation.method.upper(): operation for operation in operations}
        if len(by_method) != len(operations):
            raise ValueError(f"{path}: a method is declared twice")
        self.operations = tuple(by_method.values())
        if "GET" in by_method:
            by_method.setdefault("HEAD", by_method["GET"])

        async def dispatch(request: Request) -> Response:
            operation = by_method[request.method]
            request.scope[_OPERATION_KEY] = operation
            return await operation.handler(request)

        super().__init__(path, dispatch, methods=list(by_method))


def api(path: str, *operations: Operation) -> ApiRoute:
    """`api("/jobs", Operation("GET", list_jobs, ...), Operation("POST", create_job, ...))`."""
    return ApiRoute(path, operations)


def resource(path: str, **handlers: Handler) -> Route:
    """`resource("/healthz", GET=healthz)`: a route outside the API, with nothing to declare."""
    by_method = {method.upper(): handler for method, handler in handlers.items()}
    if "GET" in by_method:
        by_method.setdefault("HEAD", by_method["GET"])

    async def dispatch(request: Request) -> Response:
        return await by_method[request.method](request)

    return Route(path, dispatch, methods=list(by_method))


def operation(request: Request) -> Operation:
    """The declared operation serving this request."""
    try:
        declared: Operation = request.scope[_OPERATION_KEY]
    except KeyError:
        raise LookupError(f"{request.url.path} is not served by a declared operation") from None
    return declared
