"""Retention removes collected outputs older than CORTEX_RETENTION_OUTPUTS: from the
artifact store, then their rows; newer ones stay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database, retention
from app.outputs import repository
from app.outputs.packing import Packed
from app.outputs.store import ArtifactMissing, DirectoryStore
from app.settings import DAY, Settings
from tests.factories import Keys, seed_jobs


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def add_output(db: AsyncEngine, store: DirectoryStore, job_id: str, age_days: float) -> str:
    key = f"outputs/{job_id}"
    await store.put(key, _one(b"data"), 4)
    async with database.transaction(db) as connection:
        await repository.save(connection, job_id, Packed(key, 4, 1, "a.txt", "text/plain", "0"))
        await connection.execute(
            sa.text(
                "UPDATE job_outputs SET created_at = now() - make_interval(days => :days)"
                " WHERE job_id = :job_id"
            ),
            {"days": age_days, "job_id": job_id},
        )
    return key


async def test_old_outputs_leave_the_store_and_the_table(
    db: AsyncEngine, settings: Settings, keys: Keys, tmp_path: Path
) -> None:
    await keys.create(account="alpha")
    old_job, new_job = await seed_jobs(db, "alpha", [{"status": "completed"}] * 2)
    store = DirectoryStore(tmp_path)
    old_key = await add_output(db, store, old_job, age_days=40)
    new_key = await add_output(db, store, new_job, age_days=1)

    pruned = await retention.prune(
        db, settings.model_copy(update={"retention_outputs": 30 * DAY}), artifacts=store
    )

    assert pruned is not None and pruned.rows["outputs"] == 1
    try:
        await store.open(old_key)
        raise AssertionError("the old output is still in the store")
    except ArtifactMissing:
        pass
    download = await store.open(new_key)
    await download.aclose()
    async with database.reading(db) as connection:
        assert await repository.get_for_job(connection, old_job) is None
        assert await repository.get_for_job(connection, new_job) is not None


async def test_zero_keeps_outputs_forever(
    db: AsyncEngine, settings: Settings, keys: Keys, tmp_path: Path
) -> None:
    await keys.create(account="alpha")
    [job] = await seed_jobs(db, "alpha", [{"status": "completed"}])
    store = DirectoryStore(tmp_path)
    key = await add_output(db, store, job, age_days=4000)

    await retention.prune(db, settings.model_copy(update={"retention_outputs": 0}), artifacts=store)

    download = await store.open(key)
    await download.aclose()
