"""Every error the API answers with: one class per row of the error table.

The docstring is the default message; `status_code` and `code` go on the wire.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Server error."""

    status_code = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str | None = None, details: list[dict[str, Any]] | None = None):
        self.message = message or (self.__doc__ or "").strip()
        self.details = details or []
        super().__init__(self.message)


class ValidationError(GatewayError):
    """Invalid request parameters."""

    status_code = 400
    code = "VALIDATION_ERROR"


class Unauthorized(GatewayError):
    """Missing or invalid API key."""

    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(GatewayError):
    """This API key does not have the scope this request needs."""

    status_code = 403
    code = "FORBIDDEN"


class QuotaExceeded(GatewayError):
    """This account has reached one of its quotas."""

    status_code = 403
    code = "QUOTA_EXCEEDED"


class ProviderNotAllowed(GatewayError):
    """This account may not use this provider."""

    status_code = 403
    code = "PROVIDER_NOT_ALLOWED"


class NotFound(GatewayError):
    """No such route."""

    status_code = 404
    code = "NOT_FOUND"


class JobNotFound(GatewayError):
    """Job not found."""

    status_code = 404
    code = "JOB_NOT_FOUND"


class OutputNotFound(GatewayError):
    """This job has no collected output (it is still running, left no files in
    /cortex/output/, or its output expired)."""

    status_code = 404
    code = "OUTPUT_NOT_FOUND"


class OutputLinkInvalid(GatewayError):
    """This output link is invalid or has expired: read the job again for a fresh one."""

    status_code = 403
    code = "OUTPUT_LINK_INVALID"


class OutputAlreadyUploaded(GatewayError):
    """This job's output was already uploaded; an upload link takes one."""

    status_code = 409
    code = "OUTPUT_ALREADY_UPLOADED"


class WebhookNotFound(GatewayError):
    """Webhook endpoint not found."""

    status_code = 404
    code = "WEBHOOK_NOT_FOUND"


class DeliveryNotFound(GatewayError):
    """Webhook delivery not found."""

    status_code = 404
    code = "DELIVERY_NOT_FOUND"


class TemplateNotFound(GatewayError):
    """Job template not found."""

    status_code = 404
    code = "TEMPLATE_NOT_FOUND"


class BatchNotFound(GatewayError):
    """Batch not found."""

    status_code = 404
    code = "BATCH_NOT_FOUND"


class ProviderNotFound(GatewayError):
    """Provider not found."""

    status_code = 404
    code = "PROVIDER_NOT_FOUND"


class MethodNotAllowed(GatewayError):
    """This route does not answer that HTTP method."""

    status_code = 405
    code = "METHOD_NOT_ALLOWED"


class ProviderConflict(GatewayError):
    """Provider-specific conflict."""

    status_code = 409
    code = "PROVIDER_CONFLICT"


class JobAlreadyFinished(GatewayError):
    """The job has already finished; it can no longer be cancelled."""

    status_code = 409
    code = "JOB_ALREADY_FINISHED"


class TemplateNameTaken(GatewayError):
    """This account already has a template with that name."""

    status_code = 409
    code = "TEMPLATE_NAME_TAKEN"


class BatchAlreadyFinished(GatewayError):
    """Every job of the batch has already finished; there is nothing to cancel."""

    status_code = 409
    code = "BATCH_ALREADY_FINISHED"


class LogsExpired(GatewayError):
    """This job's log lines were removed by the retention policy."""

    status_code = 410
    code = "LOGS_EXPIRED"


class IdempotencyKeyReused(GatewayError):
    """This Idempotency-Key was already used for a different request; use a new key."""

    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"


class BudgetExceeded(GatewayError):
    """This job would cost more than what is left of a spending budget; `details` name it."""

    status_code = 402
    code = "BUDGET_EXCEEDED"


class PayloadTooLarge(GatewayError):
    """The request body is larger than this gateway accepts."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(GatewayError):
    """The request body must be JSON, sent with Content-Type: application/json."""

    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimitExceeded(GatewayError):
    """Too many requests."""

    status_code = 429
    code = "RATE_LIMIT_EXCEEDED"
    # Whole seconds until a retry can succeed, sent as the Retry-After header.
    retry_after: int | None = None


class InternalError(GatewayError):
    """Internal server error."""

    status_code = 500
    code = "INTERNAL_ERROR"


class ProviderUnavailable(GatewayError):
    """Provider network unavailable."""

    status_code = 503
    code = "PROVIDER_UNAVAILABLE"


class ServiceUnavailable(GatewayError):
    """The gateway cannot reach its database right now; retry shortly."""

    status_code = 503
    code = "SERVICE_UNAVAILABLE"


class NotReady(GatewayError):
    """The gateway is not ready to serve; `details` names each failing check."""

    status_code = 503
    code = "NOT_READY"


ALL_ERRORS: tuple[type[GatewayError], ...] = (
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
