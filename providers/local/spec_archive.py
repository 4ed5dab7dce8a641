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
        for directory in ("cortex", "cortex/spec"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(SPEC_PATH.lstrip("/"))
        info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(content))
    return archive.getvalue()
