"""GET /jobs/{id}/output: a job's collected output, with an API key (jobs:read) or through
a signed link (app/outputs/links.py). PUT /jobs/{id}/output-upload: where a network that sends
outputs itself (Golem) puts the tar of /cortex/output/, through a signed upload link
(app/outputs/uploads.py)."""

from __future__ import annotations

import re
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app import database, envelope, errors, openapi
from app.auth.requests import require_scope
from app.auth.scopes import Scope
from app.outputs import service, uploads
from app.outputs.store import ArtifactError, ArtifactMissing
from app.routing import Operation, api

_LINK_PARAMETERS = ("expires", "signature")
# Uploads are bounded by CORTEX_OUTPUT_MAX_BYTES (uploads.receive), not the request body limit.
UNBOUNDED_BODIES = re.compile(rf"^{re.escape(openapi.PREFIX)}/jobs/[^/]+/output-upload$")


def api_base_url(request: Request) -> str:
    """Where clients reach the API: CORTEX_PUBLIC_URL when set, else the request's origin."""
    public = request.state.settings.public_url
    origin = public.rstrip("/") if public else f"{request.url.scheme}://{request.url.netloc}"
    return origin + openapi.PREFIX


async def get_output(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    params = request.query_params
    unknown = sorted(set(params) - set(_LINK_PARAMETERS))
    if unknown:
        raise errors.ValidationError(
            "Invalid query parameters.",
            [{"field": name, "message": "unknown query parameter"} for name in unknown],
        )
    async with database.reading(request.state.db) as connection:
        if any(name in params for name in _LINK_PARAMETERS):
            output = await service.for_link(
                connection,
                request.state.output_key,
                job_id,
                params.get("expires"),
                params.get("signature"),
            )
        else:
            auth = await require_scope(connection, request)
            output = await service.for_account(connection, auth.account_id, job_id)
    try:
        download = await request.state.artifacts.open(output["store_key"])
    except ArtifactMissing:
        raise errors.OutputNotFound() from None
    except ArtifactError as exc:
        raise errors.ServiceUnavailable("The artifact store is unreachable; try again.") from exc
    name = output["file_name"] or f"{job_id}-output.tar.gz"
    return StreamingResponse(
        download.chunks,
        media_type=output["content_type"],
        headers={
            "Content-Length": str(download.size),
            # Always a download, never rendered: a workload's HTML must not run on our origin.
            "Content-Disposition": f'attachment; filename="{_ascii(name)}"; '
            f"filename*=UTF-8''{quote(name, safe='')}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "ETag": f'"{output["sha256"]}"',
            # How to read it: the one file itself, or a tar.gz of them all.
            "Cortex-Output-Form": "file" if output["file_name"] else "tar.gz",
            "Cortex-Output-Files": str(output["file_count"]),
            "Cache-Control": "private, no-store",
        },
        background=BackgroundTask(download.aclose),
    )


class OutputUpload(BaseModel):
    """What the gateway staged; the engine keeps it as the job's output when the network
    reports the upload done."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    job_id: str
    size_bytes: int


class UploadLinkQuery(BaseModel):
    """The upload link's own parameters, both required (the handler checks them)."""

    expires: str = Field(description="Unix seconds after which the link is refused.")
    signature: str = Field(description="The gateway's signature of the job and the expiry.")


async def put_output_upload(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    params = request.query_params
    problems = [
        {"field": name, "message": "unknown query parameter"}
        for name in sorted(set(params) - set(_LINK_PARAMETERS))
    ] + [
        {"field": name, "message": "required: the upload link's own"}
        for name in _LINK_PARAMETERS
        if name not in params
    ]
    if problems:
        raise errors.ValidationError("Invalid query parameters.", problems)
    async with database.reading(request.state.db) as connection:
        await service.open_upload(
            connection,
            request.state.output_key,
            job_id,
            params.get("expires"),
            params.get("signature"),
        )
    store = request.state.artifacts
    try:
        if await uploads.exists(store, uploads.staged_key(job_id)):
            raise errors.OutputAlreadyUploaded()
        declared = request.headers.get("content-length", "")
        size = await uploads.receive(
            store,
            job_id,
            request.stream(),
            int(declared) if declared.isdigit() else None,
            request.state.settings.output_max_bytes,
        )
    except uploads.UploadTooLarge as exc:
        limit = request.state.settings.output_max_bytes
        raise errors.PayloadTooLarge(
            f"The output is over the limit of {limit} bytes per job (with its archive's "
            f"headers, {uploads.cap(limit)} bytes; {exc.seen_bytes} seen): none is kept."
        ) from None
    except ArtifactError as exc:
        raise errors.ServiceUnavailable("The artifact store is unreachable; try again.") from exc
    return envelope.ok(OutputUpload(job_id=job_id, size_bytes=size), status_code=201)


def _ascii(name: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)


routes = [
    api(
        "/jobs/{job_id}/output",
        Operation(
            "GET",
            get_output,
            "getJobOutput",
            "Download a job's output: its one file as itself, several as a tar.gz. With "
            "`expires` and `signature` (the job's `results.outputUrl`), no API key is needed.",
            scopes=(Scope.JOBS_READ,),
            # The file's own media type, or application/gzip for a tar.gz of several.
            media_types=("*/*",),
            errors=(
                errors.ValidationError,
                errors.JobNotFound,
                errors.OutputNotFound,
                errors.OutputLinkInvalid,
                errors.ServiceUnavailable,
            ),
        ),
    ),
    api(
        "/jobs/{job_id}/output-upload",
        Operation(
            "PUT",
            put_output_upload,
            "uploadJobOutput",
            "Upload a job's output as a tar of /cortex/output/ (entries under `output/`), once, "
            "through the signed upload link (`expires`, `signature`) the gateway gave the job's "
            "network: used by networks that send outputs themselves (Golem's `transfer`). "
            "No API key.",
            response=OutputUpload,
            status=201,
            query=UploadLinkQuery,
            body_media_types=("application/octet-stream",),
            errors=(
                errors.ValidationError,
                errors.OutputLinkInvalid,
                errors.JobNotFound,
                errors.JobAlreadyFinished,
                errors.OutputAlreadyUploaded,
                errors.PayloadTooLarge,
                errors.ServiceUnavailable,
            ),
        ),
    ),
]
