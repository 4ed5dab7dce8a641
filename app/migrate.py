"""Applies the alembic migrations that ship inside the package."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

import migrations

# The top-level `migrations` package ships in the wheel beside `app`; found by path, so the
# working directory does not matter.
SCRIPT_LOCATION = str(Path(migrations.__file__).parent)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to `revision`. Blocks; call it outside an event loop."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(""))


def head_revisions() -> frozenset[str]:
    """The revisions this code's migrations end at."""
    return frozenset(_scripts().get_heads())


def known_revisions() -> frozenset[str]:
    """Every revision this code ships (a database at another one was migrated by newer code)."""
    return frozenset(script.revision for script in _scripts().walk_revisions())


async def applied_revisions(connection: AsyncConnection) -> frozenset[str]:
    """The revisions the database is at (empty when none was ever applied)."""

    def read(sync_connection: Connection) -> frozenset[str]:
        return frozenset(MigrationContext.configure(sync_connection).get_current_heads())

    return await connection.run_sync(read)
