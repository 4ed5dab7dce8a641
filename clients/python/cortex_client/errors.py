"""What the client raises: one `ApiError` subclass per code of the gateway's error table.

Each class has the name and code of the gateway's own (tests/client/test_models.py checks the
table against the server's), so `except JobNotFound` catches exactly a 404 `JOB_NOT_FOUND`. A
code this client does not know yet raises a plain `ApiError` carrying that code.
"""

from __future__ import annotations

from typing import Any

import httpx


class CortexError(Exception):
    """Anything the client raises."""


class ConnectionFailed(CortexError):
    """The gateway could not be reached (refused, reset, timed out)."""


class ApiError(CortexError):
    """The gateway answered with its error envelope (or with something that is not one)."""

    status_code: int = 0
    code: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: list[dict[str, Any]] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details or []
        self.response = response

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ValidationError(ApiError):
    """Invalid request parameters."""

    status_code = 400
    code = "VALIDATION_ERROR"


class Unauthorized(ApiError):
    """Missing or invalid API key."""

    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(ApiError):
    """This API key does not have the scope this request needs."""

    status_code = 403
    code = "FORBIDDEN"


class QuotaExceeded(ApiError):
    """This account has reached one of its quotas."""

    status_code = 403
    code = "QUOTA_EXCEEDED"


class ProviderNotAllowed(ApiError):
    """This account may not use this provider."""

    status_code = 403
    code = "PROVIDER_NOT_ALLOWED"


class NotFound(ApiError):
    """No such route."""

    status_code = 404
    code = "NOT_FOUND"


class JobNotFound(ApiError):
    """Job not found."""

    status_code = 404
    code = "JOB_NOT_FOUND"


class OutputNotFound(ApiError):
    """This job has no collected output (it is still running, left no files in
    /cortex/output/, or its output expired)."""

    status_code = 404
    code = "OUTPUT_NOT_FOUND"


class OutputLinkInvalid(ApiError):
    """This output link is invalid or has expired: read the job again for a fresh one."""

    status_code = 403
    code = "OUTPUT_LINK_INVALID"


class OutputAlreadyUploaded(ApiError):
    """This job's output was already uploaded; an upload link takes one."""

    status_code = 409
    code = "OUTPUT_ALREADY_UPLOADED"


class WebhookNotFound(ApiError):
    """Webhook endpoint not found."""

    status_code = 404
    code = "WEBHOOK_NOT_FOUND"


class DeliveryNotFound(ApiError):
    """Webhook delivery not found."""

    status_code = 404
    code = "DELIVERY_NOT_FOUND"


class TemplateNotFound(ApiError):
    """Job template not found."""

    status_code = 404
    code = "TEMPLATE_NOT_FOUND"


class BatchNotFound(ApiError):
    """Batch not found."""

    status_code = 404
    code = "BATCH_NOT_FOUND"


class ProviderNotFound(ApiError):
    """Provider not found."""

    status_code = 404
    code = "PROVIDER_NOT_FOUND"


class MethodNotAllowed(ApiError):
    """This route does not answer that HTTP method."""

    status_code = 405
    code = "METHOD_NOT_ALLOWED"


class ProviderConflict(ApiError):
    """Provider-specific conflict."""

    status_code = 409
    code = "PROVIDER_CONFLICT"


class JobAlreadyFinished(ApiError):
    """The job has already finished; it can no longer be cancelled."""

    status_code = 409
    code = "JOB_ALREADY_FINISHED"


class TemplateNameTaken(ApiError):
    """This account already has a template with that name."""

    status_code = 409
    code = "TEMPLATE_NAME_TAKEN"


class BatchAlreadyFinished(ApiError):
    """Every job of the batch has already finished; there is nothing to cancel."""

    status_code = 409
    code = "BATCH_ALREADY_FINISHED"


class LogsExpired(ApiError):
    """This job's log lines were removed by the retention policy."""

    status_code = 410
    code = "LOGS_EXPIRED"


class IdempotencyKeyReused(ApiError):
    """This Idempotency-Key was already used for a different request; use a new key."""

    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"


class BudgetExceeded(ApiError):
    """This job would cost more than what is left of a spending budget; `details` name it."""

    status_code = 402
    code = "BUDGET_EXCEEDED"


class PayloadTooLarge(ApiError):
    """The request body is larger than this gateway accepts."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ApiError):
    """The request body must be JSON, sent with Content-Type: application/json."""

    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimitExceeded(ApiError):
    """Too many requests."""

    status_code = 429
    code = "RATE_LIMIT_EXCEEDED"


class InternalError(ApiError):
    """Internal server error."""

    status_code = 500
    code = "INTERNAL_ERROR"


class ProviderUnavailable(ApiError):
    """Provider network unavailable."""

    status_code = 503
    code = "PROVIDER_UNAVAILABLE"


class ServiceUnavailable(ApiError):
    """The gateway cannot reach its database right now; retry shortly."""

    status_code = 503
    code = "SERVICE_UNAVAILABLE"


class NotReady(ApiError):
    """The gateway is not ready to serve; `details` names each failing check."""

    status_code = 503
    code = "NOT_READY"


BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        Unauthorized,
        Forbidden,
        QuotaExceeded,
        ProviderNotAllowed,
        NotFound,
        JobNotFound,
        OutputNotFound,
        OutputLinkInvalid,
        OutputAlreadyUploaded,
        WebhookNotFound,
        DeliveryNotFound,
        TemplateNotFound,
        BatchNotFound,
        ProviderNotFound,
        MethodNotAllowed,
        ProviderConflict,
        JobAlreadyFinished,
        TemplateNameTaken,
        BatchAlreadyFinished,
        LogsExpired,
        IdempotencyKeyReused,
        BudgetExceeded,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimitExceeded,
        InternalError,
        ProviderUnavailable,
        ServiceUnavailable,
        NotReady,
    )
}


def from_response(response: httpx.Response) -> ApiError:
    """The exception for an error answer: the class of its code, or `ApiError` for an answer
    that is not the gateway's envelope (a proxy's page, say)."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details") or []
    except (ValueError, KeyError, TypeError):
        reason = response.reason_phrase or "error"
        return ApiError(
            f"HTTP {response.status_code} {reason} from {response.request.url}",
            code=f"HTTP_{response.status_code}",
            status_code=response.status_code,
            response=response,
        )
    cls = BY_CODE.get(code, ApiError)
    return cls(
        message, code=code, status_code=response.status_code, details=details, response=response
    )


__all__ = [
    "ApiError",
    "BatchAlreadyFinished",
    "BatchNotFound",
    "ConnectionFailed",
    "CortexError",
    "DeliveryNotFound",
    "Forbidden",
    "IdempotencyKeyReused",
    "InternalError",
    "JobAlreadyFinished",
    "JobNotFound",
    "MethodNotAllowed",
    "NotFound",
    "NotReady",
    "OutputAlreadyUploaded",
    "OutputLinkInvalid",
    "OutputNotFound",
    "PayloadTooLarge",
    "ProviderConflict",
    "ProviderNotAllowed",
    "ProviderNotFound",
    "ProviderUnavailable",
    "QuotaExceeded",
    "RateLimitExceeded",
    "TemplateNameTaken",
    "TemplateNotFound",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationError",
    "WebhookNotFound",
    "from_response",
]
