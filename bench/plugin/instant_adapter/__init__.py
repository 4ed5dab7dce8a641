"""`instant`: a provider whose workloads end the moment they start, for bench/scale_out.py.

It is the Acme plugin of tests/providers/plugin (an entry-point adapter whose "network" lives
in the gateway process) with its network always up: every job submitted to it is running
at once and completed at the next look, so a benchmark measures the engine, not a network.
Found by the gateway through the `cortex_gateway.providers` entry point in the dist-info
beside it, when this directory and tests/providers/plugin are on PYTHONPATH.
"""

from __future__ import annotations

from typing import Any

from acme_adapter import NETWORKS, AcmeProvider  # type: ignore[import-not-found]


class InstantProvider(AcmeProvider):  # type: ignore[misc]
    name = "instant"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        NETWORKS.setdefault(self.endpoint, {})
