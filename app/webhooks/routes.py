"""HTTP handlers for /webhooks: endpoints, their secrets, deliveries and replays."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, validation
from app.auth.requests import require_scope
from app.auth.scopes import Scope
from app.routing import resource
from app.webhooks import schemas, service, url_guard


def _allowed(request: Request) -> tuple[url_guard.Network, ...]:
    return url_guard.parse_networks(request.state.settings.webhook_allowed_networks)


async def create_endpoint(request: Request) -> Response:
    body = await request.body()
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.WEBHOOKS_WRITE)
        data = validation.parse_json(request, body, schemas.EndpointCreate)
        endpoint = await service.create_endpoint(
            connection, auth.account_id, data, _allowed(request)
        )
    return envelope.ok(endpoint, status_code=201)


async def list_endpoints(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.WEBHOOKS_READ)
        query = validation.validate_query(request, schemas.ListQuery)
        endpoints, meta = await service.list_endpoints(connection, auth.account_id, query)
    return envelope.ok(endpoints, meta=meta)


async def get_endpoint(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.WEBHOOKS_READ)
        row = await service.find_endpoint(
            connection, auth.account_id, request.path_params["endpoint_id"]
        )
    return envelope.ok(service.to_endpoint(row))


async def update_endpoint(request: Request) -> Response:
    body = await request.body()
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.WEBHOOKS_WRITE)
        data = validation.parse_json(request, body, schemas.EndpointUpdate)
        endpoint = await service.update_endpoint(
            connection, auth.account_id, request.path_params["endpoint_id"], data, _allowed(request)
        )
    return envelope.ok(endpoint)


async def delete_endpoint(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.WEBHOOKS_WRITE)
        await service.delete_endpoint(
            connection, auth.account_id, request.path_params["endpoint_id"]
        )
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    body = await request.body()
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.WEBHOOKS_WRITE)
        data = (
            validation.parse_json(request, body, schemas.SecretRotation)
            if body
            else schemas.SecretRotation()
        )
        endpoint = await service.rotate_secret(
            connection,
            auth.account_id,
            request.path_params["endpoint_id"],
            data,
            request.state.settings.webhook_rotation_grace,
        )
    return envelope.ok(endpoint)


async def send_test(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.WEBHOOKS_WRITE)
        delivery = await service.send_test(
            connection, auth.account_id, request.path_params["endpoint_id"]
        )
    return envelope.ok(delivery, status_code=202)


async def list_deliveries(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.WEBHOOKS_READ)
        query = validation.validate_query(request, schemas.DeliveryQuery)
        deliveries, meta = await service.list_deliveries(
            connection, auth.account_id, request.path_params["endpoint_id"], query
        )
    return envelope.ok(deliveries, meta=meta)


async def retry_delivery(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.WEBHOOKS_WRITE)
        delivery = await service.retry_delivery(
            connection,
            auth.account_id,
            request.path_params["endpoint_id"],
            request.path_params["delivery_id"],
        )
    return envelope.ok(delivery, status_code=202)


routes = [
    resource("/webhooks", GET=list_endpoints, POST=create_endpoint),
    resource(
        "/webhooks/{endpoint_id}", GET=get_endpoint, PATCH=update_endpoint, DELETE=delete_endpoint
    ),
    resource("/webhooks/{endpoint_id}/rotate-secret", POST=rotate_secret),
    resource("/webhooks/{endpoint_id}/test", POST=send_test),
    resource("/webhooks/{endpoint_id}/deliveries", GET=list_deliveries),
    resource("/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry", POST=retry_delivery),
]
