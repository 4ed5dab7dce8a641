"""HTTP handlers for /webhooks: endpoints, their secrets, deliveries and replays."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, errors, pagination, validation
from app.accounts import service as accounts
from app.auth.requests import require_scope
from app.auth.scopes import Scope
from app.routing import Operation, api
from app.webhooks import schemas, service, url_guard


def _allowed(request: Request) -> tuple[url_guard.Network, ...]:
    return url_guard.parse_networks(request.state.settings.webhook_allowed_networks)


async def create_endpoint(request: Request) -> Response:
    body = await request.body()
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        data = validation.parse_json(request, body, schemas.EndpointCreate)
        limits = await accounts.limits_for(connection, auth.account_id, request.state.settings)
        await accounts.check_webhook_endpoints(connection, auth.account_id, limits)
        endpoint = await service.create_endpoint(
            connection, auth.account_id, data, _allowed(request)
        )
    return envelope.ok(endpoint, status_code=201)


async def list_endpoints(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        query = validation.validate_query(request, schemas.ListQuery)
        endpoints, meta = await service.list_endpoints(connection, auth.account_id, query)
    return envelope.ok(endpoints, meta=meta)


async def get_endpoint(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        row = await service.find_endpoint(
            connection, auth.account_id, request.path_params["endpoint_id"]
        )
    return envelope.ok(service.to_endpoint(row))


async def update_endpoint(request: Request) -> Response:
    body = await request.body()
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        data = validation.parse_json(request, body, schemas.EndpointUpdate)
        endpoint = await service.update_endpoint(
            connection, auth.account_id, request.path_params["endpoint_id"], data, _allowed(request)
        )
    return envelope.ok(endpoint)


async def delete_endpoint(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        await service.delete_endpoint(
            connection, auth.account_id, request.path_params["endpoint_id"]
        )
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    body = await request.body()
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
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
        auth = await require_scope(connection, request)
        delivery = await service.send_test(
            connection, auth.account_id, request.path_params["endpoint_id"]
        )
    return envelope.ok(delivery, status_code=202)


async def list_deliveries(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        query = validation.validate_query(request, schemas.DeliveryQuery)
        deliveries, meta = await service.list_deliveries(
            connection, auth.account_id, request.path_params["endpoint_id"], query
        )
    return envelope.ok(deliveries, meta=meta)


async def retry_delivery(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        delivery = await service.retry_delivery(
            connection,
            auth.account_id,
            request.path_params["endpoint_id"],
            request.path_params["delivery_id"],
        )
    return envelope.ok(delivery, status_code=202)


_WEBHOOK_ERRORS = (errors.ValidationError, errors.WebhookNotFound)

routes = [
    api(
        "/webhooks",
        Operation(
            "GET",
            list_endpoints,
            "listWebhooks",
            "List webhook endpoints",
            scopes=(Scope.WEBHOOKS_READ,),
            response=schemas.Endpoint,
            list_response=True,
            meta=pagination.ListMeta,
            query=schemas.ListQuery,
            errors=(errors.ValidationError,),
        ),
        Operation(
            "POST",
            create_endpoint,
            "createWebhook",
            "Subscribe an endpoint to job events",
            scopes=(Scope.WEBHOOKS_WRITE,),
            response=schemas.EndpointWithSecret,
            status=201,
            request=schemas.EndpointCreate,
            errors=(errors.ValidationError, errors.QuotaExceeded, errors.UnsupportedMediaType),
        ),
    ),
    api(
        "/webhooks/{endpoint_id}",
        Operation(
            "GET",
            get_endpoint,
            "getWebhook",
            "Get a webhook endpoint",
            scopes=(Scope.WEBHOOKS_READ,),
            response=schemas.Endpoint,
            errors=(errors.WebhookNotFound,),
        ),
        Operation(
            "PATCH",
            update_endpoint,
            "updateWebhook",
            "Change an endpoint's url, events or active flag",
            scopes=(Scope.WEBHOOKS_WRITE,),
            response=schemas.Endpoint,
            request=schemas.EndpointUpdate,
            errors=_WEBHOOK_ERRORS,
        ),
        Operation(
            "DELETE",
            delete_endpoint,
            "deleteWebhook",
            "Delete an endpoint",
            scopes=(Scope.WEBHOOKS_WRITE,),
            status=204,
            errors=(errors.WebhookNotFound,),
        ),
    ),
    api(
        "/webhooks/{endpoint_id}/rotate-secret",
        Operation(
            "POST",
            rotate_secret,
            "rotateWebhookSecret",
            "Replace the signing secret (the old one signs too for a grace period)",
            scopes=(Scope.WEBHOOKS_WRITE,),
            response=schemas.EndpointWithSecret,
            request=schemas.SecretRotation,
            errors=_WEBHOOK_ERRORS,
        ),
    ),
    api(
        "/webhooks/{endpoint_id}/test",
        Operation(
            "POST",
            send_test,
            "testWebhook",
            "Send a webhook.test event",
            scopes=(Scope.WEBHOOKS_WRITE,),
            response=schemas.Delivery,
            status=202,
            errors=(errors.WebhookNotFound,),
        ),
    ),
    api(
        "/webhooks/{endpoint_id}/deliveries",
        Operation(
            "GET",
            list_deliveries,
            "listWebhookDeliveries",
            "Deliveries with their attempts",
            scopes=(Scope.WEBHOOKS_READ,),
            response=schemas.Delivery,
            list_response=True,
            meta=pagination.ListMeta,
            query=schemas.DeliveryQuery,
            errors=_WEBHOOK_ERRORS,
        ),
    ),
    api(
        "/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry",
        Operation(
            "POST",
            retry_delivery,
            "retryWebhookDelivery",
            "Send a delivery again now",
            scopes=(Scope.WEBHOOKS_WRITE,),
            response=schemas.Delivery,
            status=202,
            errors=(errors.WebhookNotFound, errors.DeliveryNotFound),
        ),
    ),
]
