"""HTTP handlers for /jobs/templates and /jobs/from-template."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, errors, pagination, validation
from app.accounts import budgets
from app.accounts import service as accounts
from app.auth.requests import require_scope
from app.auth.scopes import Scope
from app.idempotency.requests import replay, respond_once
from app.job_templates import schemas, service
from app.jobs import schemas as job_schemas
from app.jobs import service as jobs_service
from app.routing import Operation, api


async def create_template(request: Request) -> Response:
    """The config's provider is asked before the transaction opens."""
    body = await request.body()
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        limits = await accounts.limits_for(connection, auth.account_id, request.state.settings)
    data = validation.parse_json(request, body, schemas.TemplateCreate)
    jobs_service.allowed(data.config, limits)
    await service.check_config(request.state.providers, data.config)
    async with database.transaction(request.state.db) as connection:
        await accounts.check_templates(connection, auth.account_id, limits)
        template = await service.create_template(connection, auth.account_id, data)
    return envelope.ok(template, status_code=201)


async def list_templates(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        query = validation.validate_query(request, schemas.TemplateListQuery)
        templates, meta = await service.list_templates(connection, auth.account_id, query)
    return envelope.ok(templates, meta=meta)


async def get_template(request: Request) -> Response:
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        row = await service.find_template(
            connection, auth.account_id, request.path_params["template_id"]
        )
    return envelope.ok(service.to_template(row))


async def update_template(request: Request) -> Response:
    """A new config's provider is asked before the transaction opens (after the template is
    found: an unknown template is 404 whatever the body says)."""
    body = await request.body()
    template_id = request.path_params["template_id"]
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        data = validation.parse_json(request, body, schemas.TemplateUpdate)
        await service.find_template(connection, auth.account_id, template_id)
        limits = await accounts.limits_for(connection, auth.account_id, request.state.settings)
    if data.config is not None:
        jobs_service.allowed(data.config, limits)
    await service.check_update(request.state.providers, data)
    async with database.transaction(request.state.db) as connection:
        template = await service.update_template(connection, auth.account_id, template_id, data)
    return envelope.ok(template)


async def delete_template(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        await service.delete_template(
            connection, auth.account_id, request.path_params["template_id"]
        )
    return Response(status_code=204)


async def create_job_from_template(request: Request) -> Response:
    """Needs jobs:write (it submits a job) and templates:read (it reads the template). The
    job is admitted before the transaction opens, as POST /jobs admits it."""
    body = await request.body()
    template_id = request.path_params["template_id"]
    async with database.reading(request.state.db) as connection:
        auth = await require_scope(connection, request)
        replayed = await replay(connection, request, auth.account_id, body)
        if replayed is not None:
            return replayed
        data = (
            validation.parse_json(request, body, schemas.JobFromTemplate)
            if body.strip()
            else schemas.JobFromTemplate()
        )
        spec = await service.job_spec(connection, auth.account_id, template_id, data)
        limits = await accounts.limits_for(connection, auth.account_id, request.state.settings)
        payer = await budgets.payer(connection, auth, limits)
    spec = jobs_service.allowed(spec, limits)
    admitted = await service.admit_job(request.state.providers, spec, data)
    [projected] = await budgets.projected_costs(request.state.providers, payer, [(spec, admitted)])
    async with database.transaction(request.state.db) as connection:

        async def submit() -> Response:
            places = await accounts.take_places(
                connection, limits, payer, jobs=1, projected=projected
            )
            job = await service.create_job(
                connection, auth, template_id, spec, admitted, places, cost_reserved=projected
            )
            return envelope.ok(job, status_code=201)

        response = await respond_once(connection, request, auth.account_id, body, submit)
    if request.state.engine is not None:
        request.state.engine.wake()
    return response


_TEMPLATE_ERRORS = (errors.ValidationError, errors.TemplateNotFound)

routes = [
    api(
        "/jobs/templates",
        Operation(
            "GET",
            list_templates,
            "listTemplates",
            "List the account's templates",
            scopes=(Scope.TEMPLATES_READ,),
            response=schemas.Template,
            list_response=True,
            meta=pagination.ListMeta,
            query=schemas.TemplateListQuery,
            errors=(errors.ValidationError,),
        ),
        Operation(
            "POST",
            create_template,
            "createTemplate",
            "Save a job specification as a named template",
            scopes=(Scope.TEMPLATES_WRITE,),
            response=schemas.Template,
            status=201,
            request=schemas.TemplateCreate,
            errors=(
                errors.ValidationError,
                errors.TemplateNameTaken,
                errors.QuotaExceeded,
                errors.ProviderNotAllowed,
                errors.UnsupportedMediaType,
            ),
        ),
    ),
    api(
        "/jobs/templates/{template_id}",
        Operation(
            "GET",
            get_template,
            "getTemplate",
            "Get a template",
            scopes=(Scope.TEMPLATES_READ,),
            response=schemas.Template,
            errors=(errors.TemplateNotFound,),
        ),
        Operation(
            "PATCH",
            update_template,
            "updateTemplate",
            "Rename a template, or replace its description or config",
            scopes=(Scope.TEMPLATES_WRITE,),
            response=schemas.Template,
            request=schemas.TemplateUpdate,
            errors=(
                *_TEMPLATE_ERRORS,
                errors.TemplateNameTaken,
                errors.ProviderNotAllowed,
            ),
        ),
        Operation(
            "DELETE",
            delete_template,
            "deleteTemplate",
            "Delete a template (jobs made from it keep its id)",
            scopes=(Scope.TEMPLATES_WRITE,),
            status=204,
            errors=(errors.TemplateNotFound,),
        ),
    ),
    api(
        "/jobs/from-template/{template_id}",
        Operation(
            "POST",
            create_job_from_template,
            "createJobFromTemplate",
            "Submit a job from a template with overrides (also needs templates:read)",
            # jobs:write because it submits a job, templates:read because it reads the template.
            scopes=(Scope.JOBS_WRITE, Scope.TEMPLATES_READ),
            response=job_schemas.Job,
            status=201,
            request=schemas.JobFromTemplate,
            errors=(
                *_TEMPLATE_ERRORS,
                errors.BudgetExceeded,
                errors.QuotaExceeded,
                errors.ProviderNotAllowed,
                errors.UnsupportedMediaType,
                errors.ProviderUnavailable,
            ),
            idempotent=True,
        ),
    ),
]
