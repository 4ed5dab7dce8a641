"""Page/limit/sort parsing and the opaque cursors of keyset pagination."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from app import errors


@dataclass(frozen=True)
class Sort:
    field: str
    descending: bool

    @property
    def text(self) -> str:
        return f"{self.field}:{'desc' if self.descending else 'asc'}"


def parse_sort(value: str, allowed: tuple[str, ...]) -> Sort:
    """`"createdAt:desc"` -> Sort; ValueError for anything else (the query model reports it)."""
    field, _, direction = value.partition(":")
    direction = direction or "asc"
    if field not in allowed or direction not in ("asc", "desc"):
        raise ValueError(f"use field:asc or field:desc, the field one of {', '.join(allowed)}")
    return Sort(field, direction == "desc")


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: the last row's sort key, and that page's number."""

    sort: str
    after: list[Any]
    page: int
    query: str

    def encode(self) -> str:
        raw = json.dumps(
            {"s": self.sort, "a": self.after, "p": self.page, "q": self.query},
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(sort=raw["s"], after=list(raw["a"]), page=int(raw["p"]), query=raw["q"])
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise _bad_cursor("cursor is not one this API issued") from exc
        if not isinstance(cursor.sort, str) or not isinstance(cursor.query, str):
            raise _bad_cursor("cursor is not one this API issued")
        return cursor


def fingerprint(query: dict[str, Any]) -> str:
    """A short digest of the filters a cursor was issued for."""
    raw = json.dumps(query, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _bad_cursor(message: str) -> errors.ValidationError:
    return errors.ValidationError("Invalid cursor.", [{"field": "cursor", "message": message}])


def check_cursor(cursor: Cursor, *, sort: Sort, query: str) -> None:
    if cursor.sort != sort.text or cursor.query != query:
        raise _bad_cursor("cursor was issued for other filters or another sort; start again")


def pages(total: int, limit: int) -> int:
    return (total + limit - 1) // limit


class Pagination(BaseModel):
    """`meta.pagination` of a listing; `next_cursor` only where the listing has cursors."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    total: int
    page: int
    limit: int
    pages: int
    next_cursor: str | None = None


class ListMeta(BaseModel):
    """`meta` of a listing."""

    pagination: Pagination
