"""A job's output is stored within the per-job cap and the line limit, whatever it prints, and
reading it keeps the gateway's memory bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application import create_app
from providers import log_limits
from tests.engine.conftest import busybox, engine_settings, submit, wait_for
from tests.factories import API, Keys
from tests.servers import lifespan_app

CAP = 256 * 1024


@pytest.fixture
async def capped(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    settings = engine_settings(database_url, log_max_bytes_per_job=CAP)
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            client.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield client


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def _reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux: writing 5 to clear_refs), so that the peak read after a
    test is this test's, not that of whatever ran earlier in the same process."""
    Path("/proc/self/clear_refs").write_text("5")


async def _stored(db: AsyncEngine, job_id: str) -> tuple[int, int]:
    async with db.connect() as connection:
        row = (
            await connection.execute(
                sa.text(
                    "SELECT count(*), coalesce(sum(octet_length(line)), 0)"
                    " FROM log_lines WHERE job_id = :id"
                ),
                {"id": job_id},
            )
        ).one()
    return int(row[0]), int(row[1])


async def test_a_job_printing_50_mb_stores_up_to_the_cap_and_says_what_it_dropped(
    capped: httpx.AsyncClient, db: AsyncEngine
) -> None:
    _reset_peak_rss()
    rss_before = _rss_kib("VmRSS")
    job_id = await submit(
        capped, busybox("yes 0123456789abcdef0123456789abcdef | head -c 50000000", duration=600)
    )

    job = await wait_for(capped, job_id, timeout=300)

    assert job["status"] == "completed"
    lines, size = await _stored(db, job_id)
    line_bytes = len("0123456789abcdef0123456789abcdef")
    assert CAP - line_bytes < size <= CAP
    truncated = [e for e in job["events"] if e["type"] == "logs_truncated"]
    assert len(truncated) == 1
    printed_lines = 50_000_000 // (line_bytes + 1) + 1  # the last one cut by head
    assert f"{printed_lines - lines} lines" in truncated[0]["message"]
    assert job["events"][-1]["type"] == "completed"
    # What the gateway's process held while it read 50 MB (this test's process runs it).
    peak = _rss_kib("VmHWM")
    print(f"\nRSS before {rss_before} KiB, after {_rss_kib('VmRSS')} KiB, peak {peak} KiB")
    # Loose: holding the output whole would take several times the 50 MB printed.
    assert peak - rss_before < 150 * 1024


async def test_one_5_mb_line_without_newline_is_stored_cut_and_marked(
    capped: httpx.AsyncClient, db: AsyncEngine
) -> None:
    job_id = await submit(capped, busybox("head -c 5000000 /dev/zero | tr '\\0' x; sleep 1"))

    job = await wait_for(capped, job_id, timeout=120)

    assert job["status"] == "completed"
    logs = (await capped.get(f"{API}/jobs/{job_id}/logs")).json()["data"]["logs"]
    assert len(logs) == 1
    line = logs[0]["line"]
    head, _, mark = line.partition("…")
    assert head == "x" * log_limits.MAX_LINE_BYTES
    assert mark.startswith(" [truncated") and mark.endswith(" bytes]")
    assert not [e for e in job["events"] if e["type"] == "logs_truncated"]
