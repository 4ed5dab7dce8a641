"""keys with exactly the former default scopes also get webhooks:read and webhooks:write

The default scopes of `keys create` grew from the jobs and templates scopes to the whole API
the documentation presents, webhooks included. A key holding exactly the former default set
was, all but surely, created without `--scope`: its creator asked for "the API", so it is
widened the same way. This hands it no data it could not already read: deliveries carry the
account's job documents (with env values masked), which its `jobs:read` already returns. Keys
with any other set (narrower or different) keep theirs.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 02:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMER_DEFAULT = "ARRAY['jobs:read', 'jobs:write', 'templates:read', 'templates:write']"
NEW_DEFAULT = (
    "ARRAY['jobs:read', 'jobs:write', 'templates:read', 'templates:write',"
    " 'webhooks:read', 'webhooks:write']"
)


def _replace(old: str, new: str) -> None:
    # Same set, in any order and without repeats: contained both ways.
    op.execute(
        f"UPDATE api_keys SET scopes = {new}::text[]"
        f" WHERE scopes @> {old}::text[] AND scopes <@ {old}::text[]"
    )


def upgrade() -> None:
    _replace(FORMER_DEFAULT, NEW_DEFAULT)


def downgrade() -> None:
    _replace(NEW_DEFAULT, FORMER_DEFAULT)
