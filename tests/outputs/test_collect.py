"""Collection against a network that hands over whatever bytes it likes (a fake adapter with
the output capability), into a directory store."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

from app.outputs import collect
from app.outputs.store import DirectoryStore
from providers.base import Provider
from providers.types import (
    Handle,
    Health,
    LogBatch,
    MetricSample,
    Quote,
    WorkloadSpec,
    WorkloadStatus,
)


class Silent(Provider):
    """A network that only ever has ended workloads (collection asks nothing else)."""

    name = "silent"

    async def health(self) -> Health:
        return Health(True)

    async def quote(self, spec: WorkloadSpec) -> Quote:
        raise NotImplementedError

    async def submit(self, spec: WorkloadSpec) -> Handle:
        raise NotImplementedError

    async def status(self, handle: Handle) -> WorkloadStatus:
        raise NotImplementedError

    async def logs(self, handle: Handle, cursor: str | None) -> LogBatch:
        return LogBatch((), cursor, complete=True)

    async def metrics(self, handle: Handle) -> MetricSample | None:
        return None

    async def cancel(self, handle: Handle) -> None:
        pass

    async def release(self, handle: Handle) -> None:
        pass


class HandsOver(Silent):
    """A network whose workloads left `archive` (None: no output directory)."""

    collects_outputs: ClassVar[bool] = True

    def __init__(self, archive: bytes | None, chunk: int = 1000) -> None:
        super().__init__()
        self.archive, self.chunk, self.sent = archive, chunk, 0

    async def output(self, handle: Handle, write: Callable[[bytes], Awaitable[None]]) -> bool:
        if self.archive is None:
            return False
        for start in range(0, len(self.archive), self.chunk):
            await write(self.archive[start : start + self.chunk])
            self.sent += self.chunk
        return True


def tar_of(files: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(f"output/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return data.getvalue()


async def test_a_network_without_the_capability_is_not_asked(tmp_path: Path) -> None:
    outcome = await collect.collect(Silent(), {}, "job_a", DirectoryStore(tmp_path), 10)
    assert outcome == collect.Outcome()


async def test_no_output_directory_is_no_output_and_no_event(tmp_path: Path) -> None:
    outcome = await collect.collect(HandsOver(None), {}, "job_a", DirectoryStore(tmp_path), 10)
    assert outcome.packed is None and outcome.event is None


async def test_an_unreadable_archive_is_reported_not_collected(tmp_path: Path) -> None:
    network = HandsOver(b"this is not a tar" * 100)
    outcome = await collect.collect(network, {}, "job_a", DirectoryStore(tmp_path), 10_000)
    assert outcome.packed is None
    assert outcome.event == "output_not_collected"


async def test_the_transfer_stops_soon_past_the_cap(tmp_path: Path) -> None:
    archive = tar_of({"big": bytes(collect.ARCHIVE_OVERHEAD + 4_000_000)})
    network = HandsOver(archive, chunk=65536)
    limit = 1000 + collect.ARCHIVE_OVERHEAD
    outcome = await collect.collect(network, {}, "job_a", DirectoryStore(tmp_path), 1000)
    assert outcome.event == "output_too_large"
    assert network.sent <= limit + 65536 < len(archive)
    assert not any(path.is_file() for path in tmp_path.rglob("*"))  # noqa: ASYNC240


async def test_a_collected_file_is_in_the_store_with_its_digest(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    outcome = await collect.collect(
        HandsOver(tar_of({"r.csv": b"a,b\n"})), {}, "job_a", store, 10_000
    )
    assert outcome.packed is not None and outcome.event == "output_collected"
    assert (outcome.packed.file_name, outcome.packed.content_type) == ("r.csv", "text/csv")
    assert (tmp_path / "outputs" / "job_a").read_bytes() == b"a,b\n"
    assert outcome.data["sha256"] == outcome.packed.sha256
