"""Saving a job's output as the gateway sends it (GET /jobs/{id}/output): its one file as
itself, or a tar.gz extracted (`Cortex-Output-Form` says which). Shared by both clients."""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote

import httpx

_FILENAME_STAR = re.compile(r"filename\*=UTF-8''([^;]+)", re.I)
_FILENAME = re.compile(r'filename="([^"]*)"', re.I)


def file_name(response: httpx.Response) -> str:
    """The name Content-Disposition gives, reduced to a plain file name."""
    header = response.headers.get("content-disposition", "")
    match = _FILENAME_STAR.search(header)
    name = unquote(match.group(1)) if match else ""
    if not name:
        plain = _FILENAME.search(header)
        name = plain.group(1) if plain else ""
    name = os.path.basename(name.replace("\\", "/"))
    return name if name not in ("", ".", "..") else "output"


class OutputSpool:
    """The body, written to a hidden temporary file in `dest_dir` as it arrives, then put in
    place (`save`); a failed download leaves nothing behind."""

    def __init__(self, dest_dir: Path) -> None:
        dest_dir.mkdir(parents=True, exist_ok=True)
        self.dest_dir = dest_dir
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in save/__exit__
            dir=dest_dir, prefix=".cortex-output-", delete=False
        )

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def save(self, response: httpx.Response) -> list[Path]:
        """The paths of the files written."""
        self._file.close()
        spooled = Path(self._file.name)
        if response.headers.get("cortex-output-form") != "tar.gz":
            target = self.dest_dir / file_name(response)
            os.replace(spooled, target)
            return [target]
        with tarfile.open(spooled, mode="r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            # "data": nothing outside dest_dir, no links, devices or odd permissions.
            tar.extractall(self.dest_dir, members=members, filter="data")
        spooled.unlink()
        return [self.dest_dir / m.name for m in members if m.isfile()]

    def __enter__(self) -> OutputSpool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._file.close()
        Path(self._file.name).unlink(missing_ok=True)
