"""Reads a /metrics answer the way Prometheus does (with prometheus-client's own parser)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def scrape(client: httpx.AsyncClient, **headers: str) -> Scrape:
    """GET /metrics of `client`'s gateway, read."""
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


class Scrape:
    def __init__(self, text: str) -> None:
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when no sample with those labels exists."""
        found = [
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]
        return sum(found)

    def has(self, name: str) -> bool:
        return any(sample.name == name for sample in self.samples)

    def labels(self, name: str) -> set[str]:
        """Every label name the samples called `name` carry."""
        return {label for sample in self.samples if sample.name == name for label in sample.labels}
