"""The metrics wrapper is a Provider in its own right: every contract method, counted."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest

from app.observability.metrics import GatewayMetrics, MeteredProvider
from providers import (
    Handle,
    HandleNotFound,
    Health,
    LogBatch,
    MetricSample,
    Provider,
    Quote,
    WorkloadSpec,
    WorkloadState,
    WorkloadStatus,
)


class Tally(Provider):
    """A network of one workload that answers at once; `gone` makes it forget it."""

    name = "tally"

    def __init__(self) -> None:
        super().__init__()
        self.gone = False

    async def health(self) -> Health:
        return Health(True)

    async def quote(self, spec: WorkloadSpec) -> Quote:
        return Quote(usd_per_hour=0.5)

    async def submit(self, spec: WorkloadSpec) -> Handle:
        return {"id": spec.job_id}

    async def status(self, handle: Handle) -> WorkloadStatus:
        if self.gone:
            raise HandleNotFound("forgotten")
        return WorkloadStatus(WorkloadState.RUNNING)

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        return LogBatch((), cursor)

    async def metrics(self, handle: Handle) -> MetricSample | None:
        return MetricSample(datetime.now(UTC), cpu_millicores=1.0)

    async def cancel(self, handle: Handle) -> None:
        return None

    async def release(self, handle: Handle) -> None:
        return None


def calls(metrics: GatewayMetrics, operation: str, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "cortex_provider_calls_total",
        {"provider": "tally", "operation": operation, "outcome": outcome},
    )


class TestMeteredProvider:
    def test_it_implements_every_method_of_the_contract_itself(self) -> None:
        contract = {
            name
            for name, member in inspect.getmembers(Provider)
            if inspect.isfunction(member) and not name.startswith("_")
        }
        assert contract <= set(vars(MeteredProvider))
        assert not inspect.isabstract(MeteredProvider)

    def test_it_answers_as_the_adapter_it_wraps(self) -> None:
        adapter = Tally()
        metered = GatewayMetrics(["tally"]).meter(adapter)
        assert isinstance(metered, Provider)
        assert (metered.name, metered.capabilities) == ("tally", adapter.capabilities)

    async def test_each_network_call_is_counted_with_its_outcome(self) -> None:
        metrics = GatewayMetrics(["tally"])
        adapter = Tally()
        metered = metrics.meter(adapter)
        handle = await metered.submit(WorkloadSpec("job_1", "busybox", 100, 2**20, 2**20, 60))
        assert (await metered.status(handle)).state is WorkloadState.RUNNING
        adapter.gone = True
        with pytest.raises(HandleNotFound):
            await metered.status(handle)
        assert calls(metrics, "submit", "ok") == 1
        assert calls(metrics, "status", "ok") == 1
        assert calls(metrics, "status", "handle_not_found") == 1
