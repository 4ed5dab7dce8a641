"""Golem's constraint language, as the market matches it: LDAP-like prefix expressions
`(&(golem.inf.mem.gib>=0.5)(golem.runtime.name=vm))`, with `|`, `!`, the operators
`= <= >= < >` and `*` as a wildcard (golem-core-python golem/payload/parser.tx)."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

_LEAF = re.compile(r"^\s*([^<>=!()\s]+)\s*(<=|>=|=|<|>)\s*(.*?)\s*$")


class ConstraintError(ValueError):
    pass


def matches(expression: str, properties: dict[str, Any]) -> bool:
    """Whether `properties` satisfy the constraint `expression` (empty: always)."""
    text = expression.strip()
    if not text:
        return True
    node, rest = _parse(text, 0)
    if text[rest:].strip():
        raise ConstraintError(f"trailing text in constraint: {text[rest:]!r}")
    return _evaluate(node, properties)


def _parse(text: str, at: int) -> tuple[Any, int]:
    at = _skip(text, at)
    if at >= len(text) or text[at] != "(":
        raise ConstraintError(f"expected '(' at {at} in {text!r}")
    at = _skip(text, at + 1)
    if at < len(text) and text[at] in "&|!":
        operator = text[at]
        at += 1
        children = []
        while True:
            at = _skip(text, at)
            if at >= len(text):
                raise ConstraintError(f"unclosed group in {text!r}")
            if text[at] == ")":
                return (operator, children), at + 1
            child, at = _parse(text, at)
            children.append(child)
    depth_end = text.find(")", at)
    if depth_end < 0:
        raise ConstraintError(f"unclosed constraint in {text!r}")
    leaf = _LEAF.match(text[at:depth_end])
    if leaf is None:
        raise ConstraintError(f"cannot read constraint {text[at:depth_end]!r}")
    return ("leaf", leaf.groups()), depth_end + 1


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _evaluate(node: Any, properties: dict[str, Any]) -> bool:
    kind, body = node
    if kind == "&":
        return all(_evaluate(child, properties) for child in body)
    if kind == "|":
        return any(_evaluate(child, properties) for child in body)
    if kind == "!":
        return not all(_evaluate(child, properties) for child in body)
    name, operator, expected = body
    if name not in properties:
        return False
    actual = properties[name]
    if operator == "=":
        values = actual if isinstance(actual, list) else [actual]
        return any(fnmatch.fnmatchcase(_text(value), expected) for value in values)
    try:
        left, right = float(actual), float(expected)
    except (TypeError, ValueError):
        return False
    return {
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[operator]


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
