"""Applies the alembic migrations that ship inside the package."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

SCRIPT_LOCATION = "cortex_gateway:migrations"


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
