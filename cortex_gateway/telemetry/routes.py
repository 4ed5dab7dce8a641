"""GET /jobs/{id}/logs and GET /jobs/{id}/metrics: what the engine collected."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from cortex_gateway import database, envelope, errors, validation
from cortex_gateway.auth.requests import require_scope
from cortex_gateway.auth.scopes import Scope
from cortex_gateway.jobs import service as jobs_service
from cortex_gateway.routing import resource
from cortex_gateway.telemetry import repository, schemas


def _query(request: Request, model: type[Any]) -> Any:
    data: dict[str, str] = {}
    for name in request.query_params:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise errors.ValidationError(
                "Invalid query parameters.", [{"field": name, "message": "give it only once"}]
            )
        data[name] = values[0]
    return validation.validate(model, data, context="query parameters")


async def get_logs(request: Request) -> JSONResponse:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.JOBS_READ)
        query: schemas.LogQuery = _query(request, schemas.LogQuery)
        job = await jobs_service.find_job(
            connection, auth.account_id, request.path_params["job_id"]
        )
        rows = await repository.tail_logs(connection, job["id"], tail=query.tail, since=query.since)
    logs = [schemas.LogEntry(**row) for row in rows]
    return envelope.ok(schemas.Logs(logs=logs))


async def get_metrics(request: Request) -> JSONResponse:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request, Scope.JOBS_READ)
        query: schemas.MetricQuery = _query(request, schemas.MetricQuery)
        job = await jobs_service.find_job(
            connection, auth.account_id, request.path_params["job_id"]
        )
        rows = await repository.metric_buckets(
            connection,
            job["id"],
            period=schemas.PERIODS[query.period],
            resolution=schemas.RESOLUTIONS[query.resolution],
        )

    def series(key: str) -> list[schemas.Point]:
        return [
            schemas.Point(timestamp=row["bucket"], value=float(row[key]))
            for row in rows
            if row[key] is not None
        ]

    metrics = schemas.Metrics(
        cpu=series("cpu"),
        memory=series("memory"),
        network=schemas.Network(rx=series("rx"), tx=series("tx")),
    )
    return envelope.ok(metrics)


routes = [
    resource("/jobs/{job_id}/logs", GET=get_logs),
    resource("/jobs/{job_id}/metrics", GET=get_metrics),
]
