"""The job spec file placed in every container, packed for the Docker API's PUT /archive."""

from __future__ import annotations

import io
import json
import tarfile
import time
from typing import Any

from providers.spec_file import SPEC_PATH


def spec_archive(document: dict[str, Any]) -> bytes:
    """The job spec file at SPEC_PATH, as a tar for the Docker API's PUT /archive."""
    content = json.dumps(document, indent=2).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        # cortex/output: where the workload leaves files for the gateway to collect, writable
        # whatever user the image runs as.
        for directory, mode in (
            ("cortex", 0o755),
            ("cortex/spec", 0o755),
            ("cortex/output", 0o777),
        ):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        info = tarfile.TarInfo(SPEC_PATH.lstrip("/"))
        info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(content))
    return archive.getvalue()
