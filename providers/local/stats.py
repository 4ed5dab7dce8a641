"""A running container's metric sample, from the runtime's one-shot stats answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from providers.types import MetricSample


class CpuSamples:
    """CPU use is a rate: each container's last counter reading, to measure the next against."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, float]] = {}

    def sample(
        self, container_id: str, stats: dict[str, Any], started_at: datetime | None
    ) -> MetricSample:
        now = datetime.now(UTC)
        cpu_usage = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
        total = int(cpu_usage.get("total_usage") or 0)
        cpu = None
        previous = self._seen.get(container_id)
        wall = time.monotonic()
        if previous is not None and wall > previous[1] and total >= previous[0]:
            cpu = (total - previous[0]) / ((wall - previous[1]) * 1e9) * 1000
        elif started_at is not None:
            # No earlier sample (the runtime's one-shot stats carry none): average since start.
            elapsed = (now - started_at).total_seconds()
            cpu = total / (elapsed * 1e9) * 1000 if elapsed > 0 else None
        self._seen[container_id] = (total, wall)
        memory = (stats.get("memory_stats") or {}).get("usage")
        networks = stats.get("networks") or {}
        rx = sum(int(n.get("rx_bytes", 0)) for n in networks.values()) if networks else None
        tx = sum(int(n.get("tx_bytes", 0)) for n in networks.values()) if networks else None
        return MetricSample(
            now,
            cpu_millicores=round(cpu, 3) if cpu is not None else None,
            memory_bytes=int(memory) if memory is not None else None,
            network_rx_bytes=rx,
            network_tx_bytes=tx,
        )

    def forget(self, container_id: str) -> None:
        self._seen.pop(container_id, None)
