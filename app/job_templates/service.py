"""Template use cases: CRUD, and jobs made from a template with overrides. Never commits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pydantic
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app import errors, ids, pagination, validation
from app.accounts.active_jobs import Places
from app.admission import Admission, ProviderSet
from app.auth.service import AuthContext
from app.job_templates import repository, schemas
from app.jobs import schemas as job_schemas
from app.jobs import service as jobs_service

# JSONB keeps an object's keys in its own order; a template shows them as a job does:
# the resources first, then the rest of the configuration.
_FIELDS = job_schemas.JobSpec.model_fields
_SPEC_ORDER = {
    (_FIELDS[name].alias or name): position
    for position, name in enumerate(
        sorted(_FIELDS, key=lambda name: name in job_schemas.JobConfig.model_fields)
    )
}


def to_template(row: RowMapping) -> schemas.Template:
    config = dict(
        sorted(row["config"].items(), key=lambda item: _SPEC_ORDER.get(item[0], len(_SPEC_ORDER)))
    )
    return schemas.Template.model_validate({**row, "config": config})


def _stored(spec: job_schemas.JobSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True)


def _name_taken(name: str) -> errors.TemplateNameTaken:
    return errors.TemplateNameTaken(
        f"This account already has a template named {name!r}.",
        [{"field": "name", "message": "already used by another template", "type": "unique"}],
    )


async def check_config(providers: ProviderSet, spec: job_schemas.JobSpec) -> None:
    """The admission POST /jobs asks of the providers (before any transaction opens), with
    the fields named inside `config`: a config no provider can run is refused, but one whose
    provider is down or not configured now is stored all the same (its health is asked when
    a job is made from the template)."""
    try:
        await jobs_service.admit(providers, spec)
    except errors.ValidationError as exc:
        exc.details = [{**d, "field": f"config.{d['field']}"} for d in exc.details]
        raise
    except errors.ProviderUnavailable:
        pass


async def create_template(
    connection: AsyncConnection, account_id: str, body: schemas.TemplateCreate
) -> schemas.Template:
    """Store a template whose config passed check_config."""
    try:
        row = await repository.insert_template(
            connection,
            {
                "id": ids.new_id("tpl"),
                "account_id": account_id,
                "name": body.name,
                "description": body.description,
                "config": _stored(body.config),
            },
        )
    except repository.NameTaken as exc:
        raise _name_taken(body.name) from exc
    return to_template(row)


async def find_template(
    connection: AsyncConnection, account_id: str, template_id: str, *, for_update: bool = False
) -> RowMapping:
    row = None
    if ids.looks_like("tpl", template_id):
        row = await repository.get_template(
            connection, account_id, template_id, for_update=for_update
        )
    if row is None:
        raise errors.TemplateNotFound(f"Template {template_id} not found.")
    return row


async def list_templates(
    connection: AsyncConnection, account_id: str, query: schemas.TemplateListQuery
) -> tuple[list[schemas.Template], dict[str, Any]]:
    sort = pagination.parse_sort(query.sort, schemas.SORT_FIELDS)
    rows, total = await repository.list_templates(
        connection,
        account_id,
        sort_field=sort.field,
        descending=sort.descending,
        limit=query.limit,
        offset=(query.page - 1) * query.limit,
    )
    meta = {
        "pagination": {
            "total": total,
            "page": query.page,
            "limit": query.limit,
            "pages": pagination.pages(total, query.limit),
        }
    }
    return [to_template(row) for row in rows], meta


async def check_update(providers: ProviderSet, body: schemas.TemplateUpdate) -> None:
    """What PATCH checks before its transaction: no nulls where a value is required, and a new
    config its provider admits."""
    null = sorted(
        name for name in body.model_fields_set & {"name", "config"} if getattr(body, name) is None
    )
    if null:
        raise errors.ValidationError(
            "Invalid request body.",
            [{"field": name, "message": "cannot be null", "type": "null"} for name in null],
        )
    if body.config is not None:
        await check_config(providers, body.config)


async def update_template(
    connection: AsyncConnection,
    account_id: str,
    template_id: str,
    body: schemas.TemplateUpdate,
) -> schemas.Template:
    """Apply a PATCH that passed check_update."""
    row = await find_template(connection, account_id, template_id, for_update=True)
    values: dict[str, Any] = {}
    if body.name is not None:
        values["name"] = body.name
    if "description" in body.model_fields_set:
        values["description"] = body.description
    if body.config is not None:
        values["config"] = _stored(body.config)
    if values:
        try:
            row = await repository.update_template(connection, row["id"], values)
        except repository.NameTaken as exc:
            raise _name_taken(values["name"]) from exc
    return to_template(row)


async def delete_template(connection: AsyncConnection, account_id: str, template_id: str) -> None:
    row = await find_template(connection, account_id, template_id, for_update=True)
    await repository.delete_template(connection, row["id"])


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7386): objects merge by key, null removes a key, anything else
    (lists included) replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _overrides_field(field: str, overrides: dict[str, Any]) -> str:
    top = field.split(".", 1)[0].split("[", 1)[0]
    return f"overrides.{field}" if top in overrides else field


async def job_spec(
    connection: AsyncConnection, account_id: str, template_id: str, body: schemas.JobFromTemplate
) -> job_schemas.JobSpec:
    """The job the template makes with the overrides applied (400 naming the overridden
    fields when the result is not a valid job)."""
    template = await find_template(connection, account_id, template_id)
    document = merge_patch(template["config"], body.overrides)
    try:
        return job_schemas.JobSpec.model_validate(document)
    except pydantic.ValidationError as exc:
        details = validation.details_of(exc)
        for detail in details:
            detail["field"] = _overrides_field(detail["field"], body.overrides)
        raise errors.ValidationError(
            f"Template {template_id} with these overrides is not a valid job.", details
        ) from exc


async def admit_job(
    providers: ProviderSet, spec: job_schemas.JobSpec, body: schemas.JobFromTemplate
) -> Admission:
    """The job's admission, as any submitted job's, with refused fields named as overrides
    where the overrides set them."""
    try:
        return await jobs_service.admit(providers, spec)
    except errors.ValidationError as exc:
        for detail in exc.details:
            detail["field"] = _overrides_field(detail["field"], body.overrides)
        raise


async def create_job(
    connection: AsyncConnection,
    auth: AuthContext,
    template_id: str,
    spec: job_schemas.JobSpec,
    admitted: Admission,
    places: Places,
    *,
    cost_reserved: Decimal = Decimal(0),
) -> job_schemas.Job:
    """Store the admitted job at one of `places`, linked to its template, with the cost it
    reserves."""
    return await jobs_service.create_job(
        connection,
        auth.account_id,
        spec,
        admitted,
        places=places,
        template_id=template_id,
        api_key_id=auth.key_id,
        cost_reserved=cost_reserved,
    )
