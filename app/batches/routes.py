"""HTTP handlers for /jobs/batch."""

from __future__ import annotations

from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, errors, pagination, validation
from app.accounts import budgets
from app.accounts import service as accounts
from app.auth.requests import require_scope
from app.auth.scopes import Scope
from app.batches import schemas, service
from app.idempotency.requests import replay, respond_once
from app.jobs import service as jobs_service
from app.routing import Operation, api


async def create_batch(request: Request) -> Response:
    """Every job is admitted before the transaction opens (see jobs.routes.create_job)."""
    body = await request.body()
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        replayed = await replay(connection, request, auth.account_id, body)
        limits = await accounts.limits_for(connection, auth.account_id, request.state.settings)
        payer = await budgets.payer(connection, auth, limits)
    if replayed is not None:
        return replayed
    data = validation.parse_json(request, body, schemas.BatchCreate)
    accounts.check_batch_size(limits, len(data.jobs))
    data = data.model_copy(
        update={"jobs": [jobs_service.allowed(spec, limits) for spec in data.jobs]}
    )
    admitted = await service.admit_batch(request.state.providers, data)
    # The batch must fit as a whole: its jobs' projections are reserved together.
    projected = await budgets.projected_costs(
        request.state.providers, payer, list(zip(data.jobs, admitted, strict=True)), batch=True
    )
    async with database.transaction(request.state.db) as connection:

        async def submit() -> Response:
            places = await accounts.take_places(
                connection, limits, payer, jobs=len(data.jobs), projected=sum(projected, Decimal(0))
            )
            batch = await service.create_batch(
                connection, auth, data, admitted, places, cost_reserved=projected
            )
            return envelope.ok(batch, status_code=201)

        response = await respond_once(connection, request, auth.account_id, body, submit)
    if request.state.engine is not None:
        request.state.engine.wake()
    return response


async def list_batches(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        query = validation.validate_query(request, schemas.BatchListQuery)
        batches, meta = await service.list_batches(connection, auth.account_id, query)
    return envelope.ok(batches, meta=meta)


async def get_batch(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        batch = await service.get_batch(
            connection, auth.account_id, request.path_params["batch_id"]
        )
    return envelope.ok(batch)


async def cancel_batch(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        batch, stopping = await service.cancel_batch(
            connection, auth.account_id, request.path_params["batch_id"]
        )
    if request.state.engine is not None:
        for job_id in stopping:
            request.state.engine.poke(job_id)
    return envelope.ok(batch)


routes = [
    api(
        "/jobs/batch",
        Operation(
            "GET",
            list_batches,
            "listBatches",
            "List the account's batches, newest first, with counts per status",
            scopes=(Scope.JOBS_READ,),
            response=schemas.BatchSummary,
            list_response=True,
            meta=pagination.ListMeta,
            query=schemas.BatchListQuery,
            errors=(errors.ValidationError,),
        ),
        Operation(
            "POST",
            create_batch,
            "createBatch",
            "Submit several jobs at once, all or none, run at most `concurrency` at a time",
            scopes=(Scope.JOBS_WRITE,),
            response=schemas.BatchSubmitted,
            status=201,
            request=schemas.BatchCreate,
            errors=(
                errors.ValidationError,
                errors.BudgetExceeded,
                errors.QuotaExceeded,
                errors.ProviderNotAllowed,
                errors.UnsupportedMediaType,
                errors.PayloadTooLarge,
                errors.ProviderUnavailable,
            ),
            idempotent=True,
        ),
    ),
    api(
        "/jobs/batch/{batch_id}",
        Operation(
            "GET",
            get_batch,
            "getBatch",
            "Get a batch with how many of its jobs are in each status",
            scopes=(Scope.JOBS_READ,),
            response=schemas.Batch,
            errors=(errors.BatchNotFound,),
        ),
    ),
    api(
        "/jobs/batch/{batch_id}/cancel",
        Operation(
            "POST",
            cancel_batch,
            "cancelBatch",
            "Cancel every unfinished job of a batch",
            scopes=(Scope.JOBS_WRITE,),
            response=schemas.Batch,
            errors=(errors.BatchNotFound, errors.BatchAlreadyFinished),
        ),
    ),
]
