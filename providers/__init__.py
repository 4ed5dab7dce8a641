"""Provider networks a job can run on: the adapter contract, its types and errors, and the
registry. This package imports nothing else of the gateway, so adapters can live anywhere."""

from providers.base import Provider
from providers.errors import (
    HandleNotFound,
    ImagePullFailed,
    NotConfigured,
    ProviderError,
    Rejected,
    Unavailable,
)
from providers.registry import (
    ENTRY_POINT_GROUP,
    UnknownProvider,
    available_providers,
    provider_class,
)
from providers.types import (
    Capabilities,
    Endpoint,
    FailureReason,
    GpuSpec,
    Handle,
    Health,
    LogBatch,
    LogLine,
    MetricSample,
    NativePrice,
    PortSpec,
    Quote,
    Refusal,
    VolumeSpec,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Capabilities",
    "Endpoint",
    "FailureReason",
    "GpuSpec",
    "Handle",
    "HandleNotFound",
    "Health",
    "ImagePullFailed",
    "LogBatch",
    "LogLine",
    "MetricSample",
    "NativePrice",
    "NotConfigured",
    "PortSpec",
    "Provider",
    "ProviderError",
    "Quote",
    "Refusal",
    "Rejected",
    "Unavailable",
    "UnknownProvider",
    "VolumeSpec",
    "WorkloadSpec",
    "WorkloadState",
    "WorkloadStatus",
    "available_providers",
    "provider_class",
]
