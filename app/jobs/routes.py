"""HTTP handlers for /jobs: authorize, open the transaction, call the service, render."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, errors, pagination, validation
from app.accounts import budgets
from app.accounts import service as accounts
from app.auth.requests import require_scope
from app.auth.scopes import Scope
from app.idempotency.requests import replay, respond_once
from app.jobs import schemas, service
from app.outputs import routes as output_routes
from app.outputs import service as outputs_service
from app.routing import Operation, api

_LIST_PARAMETERS = (
    "status",
    "provider",
    "from",
    "to",
    "page",
    "limit",
    "sort",
    "cursor",
    "batchId",
)
_MULTI_VALUED = ("status", "provider")


async def create_job(request: Request) -> Response:
    """The providers are asked before the transaction opens, so a slow network holds no
    connection or lock; a retry with an Idempotency-Key replays without asking them."""
    body = await request.body()
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        replayed = await replay(connection, request, auth.account_id, body)
        limits = await accounts.limits_for(connection, auth.account_id, request.state.settings)
        payer = await budgets.payer(connection, auth, limits)
    if replayed is not None:
        return replayed
    spec = service.allowed(validation.parse_json(request, body, schemas.JobSpec), limits)
    admitted = await service.admit(request.state.providers, spec)
    [projected] = await budgets.projected_costs(request.state.providers, payer, [(spec, admitted)])
    async with database.transaction(request.state.db) as connection:

        async def submit() -> Response:
            places = await accounts.take_places(
                connection, limits, payer, jobs=1, projected=projected
            )
            job = await service.create_job(
                connection,
                auth.account_id,
                spec,
                admitted,
                places=places,
                api_key_id=auth.key_id,
                cost_reserved=projected,
            )
            return envelope.ok(job, status_code=201)

        response = await respond_once(connection, request, auth.account_id, body, submit)
    if request.state.engine is not None:
        request.state.engine.wake()
    return response


async def list_jobs(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        query = _list_query(request)
        jobs, meta = await service.list_jobs(connection, auth.account_id, query)
    return envelope.ok(jobs, meta=meta)


async def get_job(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        job = await service.get_job(connection, auth.account_id, request.path_params["job_id"])
        job = await outputs_service.with_output_url(
            connection,
            job,
            base_url=output_routes.api_base_url(request),
            key=request.state.output_key,
            ttl_seconds=request.state.settings.output_url_ttl,
        )
    return envelope.ok(job)


async def cancel_job(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        job = await service.cancel_job(connection, auth.account_id, request.path_params["job_id"])
    if request.state.engine is not None:
        request.state.engine.poke(job.id)
    return envelope.ok(job)


def _list_query(request: Request) -> schemas.JobListQuery:
    params = request.query_params
    unknown = sorted(set(params) - set(_LIST_PARAMETERS))
    if unknown:
        raise errors.ValidationError(
            "Invalid query parameters.",
            [{"field": name, "message": "unknown query parameter"} for name in unknown],
        )
    data: dict[str, object] = {}
    for name in params:
        values = params.getlist(name)
        if name in _MULTI_VALUED:
            data[name] = [part.strip() for value in values for part in value.split(",")]
        elif len(values) > 1:
            raise errors.ValidationError(
                "Invalid query parameters.", [{"field": name, "message": "give it only once"}]
            )
        else:
            data[name] = values[0]
    return validation.validate(schemas.JobListQuery, data, context="query parameters")


routes = [
    api(
        "/jobs",
        Operation(
            "GET",
            list_jobs,
            "listJobs",
            "List jobs",
            scopes=(Scope.JOBS_READ,),
            response=schemas.JobSummary,
            list_response=True,
            meta=pagination.ListMeta,
            query=schemas.JobListQuery,
            errors=(errors.ValidationError,),
        ),
        Operation(
            "POST",
            create_job,
            "createJob",
            "Submit a job",
            scopes=(Scope.JOBS_WRITE,),
            response=schemas.Job,
            status=201,
            request=schemas.JobSpec,
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
        "/jobs/{job_id}",
        Operation(
            "GET",
            get_job,
            "getJob",
            "Get a job with its events",
            scopes=(Scope.JOBS_READ,),
            response=schemas.Job,
            errors=(errors.JobNotFound,),
        ),
    ),
    api(
        "/jobs/{job_id}/cancel",
        Operation(
            "POST",
            cancel_job,
            "cancelJob",
            "Cancel a job",
            scopes=(Scope.JOBS_WRITE,),
            response=schemas.Job,
            errors=(errors.JobNotFound, errors.JobAlreadyFinished),
        ),
    ),
]
