"""docs/api.md's error table and app/errors.py list the same codes, with the same statuses."""

from __future__ import annotations

import re
from pathlib import Path

from app import errors

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
ROW = re.compile(r"^\| (\d{3}) \| `([A-Z_]+)` \|")


def documented() -> list[tuple[int, str]]:
    text = DOCS.read_text()
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    return [
        (int(match.group(1)), match.group(2))
        for line in section.splitlines()
        if (match := ROW.match(line))
    ]


def test_the_docs_error_table_lists_every_code_of_app_errors_once() -> None:
    rows = documented()
    assert len(rows) == len(set(rows)), "a code is documented twice"
    defined = {(cls.status_code, cls.code) for cls in errors.ALL_ERRORS}
    assert set(rows) == defined


def test_every_error_class_is_in_the_list() -> None:
    def subclasses(cls: type[errors.GatewayError]) -> set[type[errors.GatewayError]]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= subclasses(sub)
        return found

    assert subclasses(errors.GatewayError) <= set(errors.ALL_ERRORS)
