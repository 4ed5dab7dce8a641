"""The local provider: job containers on the host's Docker Engine API (or podman's).

Split by concern: `docker_api` (the HTTP client and its answers), `containers` (a job's
container config and states), `adapter` (the lifecycle), `followers` (the event and output
doorbells), `log_frames` (Docker's log framing) and `spec_archive` (the job spec file).
"""

from providers.local.adapter import LocalProvider
from providers.local.containers import JOB_LABEL, MANAGED_LABEL
from providers.local.spec_archive import spec_archive
from providers.spec_file import SPEC_PATH

__all__ = ["JOB_LABEL", "MANAGED_LABEL", "SPEC_PATH", "LocalProvider", "spec_archive"]
