"""HTTP handlers for /jobs/batch."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, validation
from app.auth.requests import require_scope
from app.auth.scopes import Scope
from app.batches import schemas, service
from app.idempotency.requests import replay, respond_once
from app.routing import resource


async def create_batch(request: Request) -> Response:
    """Every job is admitted before the transaction opens (see jobs.routes.create_job)."""
    body = await request.body()
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.JOBS_WRITE)
        replayed = await replay(connection, request, auth.account_id, body)
    if replayed is not None:
        return replayed
    data = validation.parse_json(request, body, schemas.BatchCreate)
    admitted = await service.admit_batch(request.state.providers, data)
    async with database.transaction(request.state.db) as connection:

        async def submit() -> Response:
            batch = await service.create_batch(connection, auth.account_id, data, admitted)
            return envelope.ok(batch, status_code=201)

        response = await respond_once(connection, request, auth.account_id, body, submit)
    if request.state.engine is not None:
        request.state.engine.wake()
    return response


async def list_batches(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.JOBS_READ)
        query = validation.validate_query(request, schemas.BatchListQuery)
        batches, meta = await service.list_batches(connection, auth.account_id, query)
    return envelope.ok(batches, meta=meta)


async def get_batch(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.JOBS_READ)
        batch = await service.get_batch(
            connection, auth.account_id, request.path_params["batch_id"]
        )
    return envelope.ok(batch)


async def cancel_batch(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.JOBS_WRITE)
        batch, stopping = await service.cancel_batch(
            connection, auth.account_id, request.path_params["batch_id"]
        )
    if request.state.engine is not None:
        for job_id in stopping:
            request.state.engine.poke(job_id)
    return envelope.ok(batch)


routes = [
    resource("/jobs/batch", GET=list_batches, POST=create_batch),
    resource("/jobs/batch/{batch_id}", GET=get_batch),
    resource("/jobs/batch/{batch_id}/cancel", POST=cancel_batch),
]
