"""What the gateway asks of the Golem market and how it prices what comes back.

A demand carries the job's resources as constraints on the providers' offer properties, the
allocation's payment decorations, and an expiration within what providers accept. Offers use
the linear pricing model: `coeffs = [c_0 .. c_n-1, start]`, one coefficient per counter named
in `golem.com.usage.vector` (order varies between providers, so look them up by name).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from providers.types import WorkloadSpec

GIB = 2**30
# Providers refuse demands expiring sooner than 5 minutes from now; with a debit-note
# acceptance timeout they accept any later expiration (yagna provider negotiator limits).
MIN_EXPIRATION_SECONDS = 5 * 60
# The longest debit-note acceptance deadline providers allow is 4 minutes; ask for 2.
DEBIT_NOTE_ACCEPT_TIMEOUT = 120
# Time between publishing the demand and the command running, added to the job's duration.
PLACEMENT_ALLOWANCE_SECONDS = 15 * 60
DURATION_COUNTERS = ("golem.usage.duration_sec", "golem.usage.duration-sec")
CPU_COUNTERS = ("golem.usage.cpu_sec", "golem.usage.cpu-sec")
PLATFORM_TOKENS = {"polygon": "glm", "mainnet": "glm"}
JOB_PROPERTY = "cortex.job"
ALLOCATION_PROPERTY = "cortex.allocation"


def payment_platform(network: str) -> str:
    """yagna's platform string: erc20-polygon-glm, erc20-holesky-tglm, ..."""
    return f"erc20-{network}-{PLATFORM_TOKENS.get(network, 'tglm')}"


def threads(spec: WorkloadSpec) -> int:
    return max(1, math.ceil(spec.cpu_millicores / 1000))


def demand(
    spec: WorkloadSpec,
    package: str,
    decorations: dict[str, Any],
    platform: str,
    allocation_id: str,
) -> dict[str, Any]:
    expires = time.time() + spec.duration_seconds + PLACEMENT_ALLOWANCE_SECONDS
    properties: dict[str, Any] = {
        "golem.srv.comp.task_package": package,
        "golem.srv.comp.vm.package_format": "gvmkit-squash",
        "golem.srv.comp.expiration": int(max(expires, time.time() + 2 * MIN_EXPIRATION_SECONDS))
        * 1000,
        "golem.node.debug.subnet": "public",
        "golem.com.payment.debit-notes.accept-timeout?": DEBIT_NOTE_ACCEPT_TIMEOUT,
        "golem.com.payment.chosen-platform": platform,
        # Lets a restarted gateway find the demand (and its allocation) of a job again.
        JOB_PROPERTY: spec.job_id,
        ALLOCATION_PROPERTY: allocation_id,
    }
    for item in decorations.get("properties") or []:
        properties[str(item["key"])] = item["value"]
    constraints = [
        f"(golem.inf.cpu.threads>={threads(spec)})",
        f"(golem.inf.mem.gib>={_gib(spec.memory_bytes)})",
        f"(golem.inf.storage.gib>={_gib(spec.storage_bytes)})",
        "(golem.runtime.name=vm)",
        "(golem.com.pricing.model=linear)",
        *[str(c) for c in decorations.get("constraints") or []],
    ]
    return {"properties": properties, "constraints": "(&" + "".join(constraints) + ")"}


def _gib(size: int) -> float:
    return round(size / GIB, 3)


@dataclass(frozen=True)
class Pricing:
    """An offer's linear pricing: GLM per second for wall time and for CPU time, and the
    one-time start price."""

    vector: tuple[str, ...]
    coeffs: tuple[float, ...]

    @property
    def start(self) -> float:
        return self.coeffs[-1]

    def coefficient(self, names: tuple[str, ...]) -> float:
        for index, counter in enumerate(self.vector):
            if counter in names:
                return self.coeffs[index]
        return 0.0

    def worst_case(self, seconds: float, threads: int) -> float:
        """GLM for `seconds` of wall time with `threads` busy throughout (the estimate
        Golem's stats backend quotes)."""
        return (
            self.start
            + self.coefficient(DURATION_COUNTERS) * seconds
            + self.coefficient(CPU_COUNTERS) * seconds * threads
        )

    def cost(self, usage: list[float]) -> float:
        """GLM owed for an activity's usage counters (in `vector` order)."""
        return self.start + sum(c * u for c, u in zip(self.coeffs, usage, strict=False))

    def as_json(self) -> dict[str, Any]:
        return {"vector": list(self.vector), "coeffs": list(self.coeffs)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pricing:
        return cls(tuple(data["vector"]), tuple(float(c) for c in data["coeffs"]))


def pricing(properties: dict[str, Any]) -> Pricing | None:
    """The offer's linear pricing, or None when it uses another model or is malformed."""
    if properties.get("golem.com.pricing.model") != "linear":
        return None
    vector = properties.get("golem.com.usage.vector")
    coeffs = properties.get("golem.com.pricing.model.linear.coeffs")
    if not isinstance(vector, list) or not isinstance(coeffs, list):
        return None
    if len(coeffs) != len(vector) + 1:
        return None
    try:
        values = tuple(float(c) for c in coeffs)
    except (TypeError, ValueError):
        return None
    if any(value < 0 or math.isnan(value) for value in values):
        return None
    return Pricing(tuple(str(v) for v in vector), values)


def fits(properties: dict[str, Any], spec: WorkloadSpec) -> bool:
    """The offer has the resources the spec asks for (the market matched the constraints;
    this guards against a provider whose proposal says otherwise)."""
    try:
        return (
            int(properties.get("golem.inf.cpu.threads", 0)) >= threads(spec)
            and float(properties.get("golem.inf.mem.gib", 0)) >= _gib(spec.memory_bytes)
            and float(properties.get("golem.inf.storage.gib", 0)) >= _gib(spec.storage_bytes)
        )
    except (TypeError, ValueError):
        return False
