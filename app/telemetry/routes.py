"""GET /jobs/{id}/logs (JSON, or live with follow=true) and GET /jobs/{id}/metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import database, envelope, errors, validation
from app.auth.requests import require_job_stream_access, require_scope
from app.auth.scopes import Scope
from app.jobs import service as jobs_service
from app.routing import Operation, api
from app.streams import repository as streams_repository
from app.streams import sse
from app.streams.routes import open_lease, seq_cursor
from app.telemetry import repository, schemas


async def get_logs(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    async with database.transaction(request.state.db) as connection:
        auth = await require_job_stream_access(connection, request, job_id)
        query = validation.validate_query(request, schemas.LogQuery)
        job = await jobs_service.find_job(connection, auth.account_id, job_id)
        if await repository.logs_pruned(connection, job.id):
            raise errors.LogsExpired(
                f"The log lines of job {job.id} were removed by the retention policy."
            )
        if query.follow:
            cursor = seq_cursor(request)
            after = (
                cursor
                if cursor is not None
                else await streams_repository.log_start(
                    connection, job.id, tail=query.tail, since=query.since
                )
            )
            lease = await open_lease(connection, request, auth)
        else:
            rows = await repository.tail_logs(
                connection, job.id, tail=query.tail or schemas.MAX_LOG_LINES, since=query.since
            )
    if query.follow:
        stream = sse.job_logs(request.state.feeds, job.id, after)
        return sse.response(request.state.leases.holding(lease, stream), request, auth.key_id)
    return envelope.ok(schemas.Logs(logs=[schemas.LogEntry(**row) for row in rows]))


async def get_metrics(request: Request) -> Response:
    async with database.transaction(request.state.db) as connection:
        auth = await require_scope(connection, request)
        query = validation.validate_query(request, schemas.MetricQuery)
        job = await jobs_service.find_job(
            connection, auth.account_id, request.path_params["job_id"]
        )
        rows = await repository.metric_buckets(
            connection,
            job.id,
            period=schemas.PERIODS[query.period],
            resolution=query.bucket,
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
    meta = schemas.MetricsMeta(period=query.period, resolution=schemas.duration_text(query.bucket))
    return envelope.ok(metrics, meta=meta.model_dump())


routes = [
    api(
        "/jobs/{job_id}/logs",
        Operation(
            "GET",
            get_logs,
            "getJobLogs",
            "Read a job's log lines; with follow=true, a live Server-Sent Events stream",
            scopes=(Scope.JOBS_READ,),
            response=schemas.Logs,
            query=schemas.LogQuery,
            errors=(
                errors.ValidationError,
                errors.JobNotFound,
                errors.QuotaExceeded,
                errors.LogsExpired,
            ),
        ),
    ),
    api(
        "/jobs/{job_id}/metrics",
        Operation(
            "GET",
            get_metrics,
            "getJobMetrics",
            "Read a job's resource use",
            scopes=(Scope.JOBS_READ,),
            response=schemas.Metrics,
            meta=schemas.MetricsMeta,
            query=schemas.MetricQuery,
            errors=(errors.ValidationError, errors.JobNotFound),
        ),
    ),
]
