"""Job template queries, always within one account."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from app.models import job_templates

SORT_COLUMNS: dict[str, sa.Column[Any]] = {
    "createdAt": job_templates.c.created_at,
    "updatedAt": job_templates.c.updated_at,
    "name": job_templates.c.name,
}
_NAME_CONSTRAINT = "uq_job_templates_account_id_name"


class NameTaken(Exception):
    """Another template of the account has this name."""


async def insert_template(connection: AsyncConnection, values: dict[str, Any]) -> RowMapping:
    result = await connection.execute(
        pg_insert(job_templates)
        .values(**values)
        .on_conflict_do_nothing(constraint=_NAME_CONSTRAINT)
        .returning(*job_templates.c)
    )
    row = result.mappings().one_or_none()
    if row is None:
        raise NameTaken(values["name"])
    return row


async def get_template(
    connection: AsyncConnection, account_id: str, template_id: str, *, for_update: bool = False
) -> RowMapping | None:
    statement = sa.select(job_templates).where(
        job_templates.c.id == template_id, job_templates.c.account_id == account_id
    )
    if for_update:
        statement = statement.with_for_update()
    return (await connection.execute(statement)).mappings().one_or_none()


async def list_templates(
    connection: AsyncConnection,
    account_id: str,
    *,
    sort_field: str,
    descending: bool,
    limit: int,
    offset: int,
) -> tuple[Sequence[RowMapping], int]:
    where = job_templates.c.account_id == account_id
    order = [SORT_COLUMNS[sort_field], job_templates.c.id]
    rows = await connection.execute(
        sa.select(job_templates)
        .where(where)
        .order_by(*(column.desc() if descending else column.asc() for column in order))
        .limit(limit)
        .offset(offset)
    )
    total = await connection.scalar(
        sa.select(sa.func.count()).select_from(job_templates).where(where)
    )
    return rows.mappings().all(), int(total or 0)


async def update_template(
    connection: AsyncConnection, template_id: str, values: dict[str, Any]
) -> RowMapping:
    try:
        result = await connection.execute(
            sa.update(job_templates)
            .where(job_templates.c.id == template_id)
            .values(**values, updated_at=sa.func.now())
            .returning(*job_templates.c)
        )
    except sa.exc.IntegrityError as exc:
        if _NAME_CONSTRAINT in str(exc.orig):
            raise NameTaken(values.get("name")) from exc
        raise
    return result.mappings().one()


async def delete_template(connection: AsyncConnection, template_id: str) -> None:
    await connection.execute(sa.delete(job_templates).where(job_templates.c.id == template_id))
