"""A typed Python client of the gateway's API: `Client` (blocking) and `AsyncClient`.

    from cortex_client import Client

    with Client(url="http://127.0.0.1:8000", api_key=key) as cortex:
        job = cortex.jobs.submit(provider="local", image="busybox:latest", cpu=500,
                                 memory="64Mi", storage="1Gi", duration=60,
                                 command=["sh", "-c", "echo hi"])
        for line in cortex.jobs.follow_logs(job.id):
            print(line.line)

Answers are the models of `cortex_client.models` (`Job`, `LogEntry`, `Endpoint`, …), in the
gateway's shapes; errors raise the `ApiError` subclass of their code (`errors.JobNotFound`, …).
See docs/client.md.
"""

from __future__ import annotations

from cortex_client import errors
from cortex_client._core import Page
from cortex_client.aio import AsyncClient
from cortex_client.errors import ApiError, ConnectionFailed, CortexError
from cortex_client.models import (
    Account,
    AccountEvent,
    Batch,
    BatchSubmitted,
    BatchSummary,
    Delivery,
    Endpoint,
    EndpointWithSecret,
    Job,
    JobEventEntry,
    JobSpec,
    JobSummary,
    LogEntry,
    Metrics,
    Pagination,
    Provider,
    QuoteComparison,
    StreamToken,
    Template,
)
from cortex_client.signatures import WebhookVerificationError, verify_webhook
from cortex_client.sync import Client

__all__ = [
    "Account",
    "AccountEvent",
    "ApiError",
    "AsyncClient",
    "Batch",
    "BatchSubmitted",
    "BatchSummary",
    "Client",
    "ConnectionFailed",
    "CortexError",
    "Delivery",
    "Endpoint",
    "EndpointWithSecret",
    "Job",
    "JobEventEntry",
    "JobSpec",
    "JobSummary",
    "LogEntry",
    "Metrics",
    "Page",
    "Pagination",
    "Provider",
    "QuoteComparison",
    "StreamToken",
    "Template",
    "WebhookVerificationError",
    "errors",
    "verify_webhook",
]
