"""The job spec a workload finds on every network: the job's document as the API shows it.

Where the network lets the gateway place a file (local: the Docker archive API before the
container starts) it is the file SPEC_PATH; on every network it is also the environment
variable SPEC_ENV, as compact JSON, so one way of reading it works everywhere.
"""

from __future__ import annotations

import json

from providers.types import WorkloadSpec

SPEC_PATH = "/cortex/spec/job.json"
SPEC_ENV = "CORTEX_JOB_SPEC"
# Linux refuses a single environment string over 128 KiB (the process would not start): a
# larger document (only very long commands make one) is left out of the environment.
MAX_SPEC_ENV_BYTES = 64 * 1024


def spec_env(spec: WorkloadSpec) -> dict[str, str]:
    """{SPEC_ENV: the document as JSON}, to add to the workload's environment; empty when
    the spec has no document or its JSON passes MAX_SPEC_ENV_BYTES."""
    if not spec.document:
        return {}
    text = json.dumps(spec.document, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    if len(text.encode()) > MAX_SPEC_ENV_BYTES:
        return {}
    return {SPEC_ENV: text}
