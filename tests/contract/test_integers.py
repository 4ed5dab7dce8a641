"""Every integer field of every request body takes integral numbers (`1000.0`) and refuses
fractional ones, through the one shared type (app.validation.Integer): a new integer field
declared as a plain `int` fails here."""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pydantic
import pytest

from app import openapi, validation
from app.application import API_ROUTES


def _models(annotation: object) -> Iterator[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models(argument)


def integer_fields() -> list[tuple[str, pydantic.fields.FieldInfo]]:
    found: dict[str, pydantic.fields.FieldInfo] = {}
    seen: set[type[pydantic.BaseModel]] = set()
    pending = [op.request for _, op in openapi.operations(API_ROUTES) if op.request is not None]
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            pending += list(_models(info.annotation))
            if int in (info.annotation, *typing.get_args(info.annotation)):
                found[f"{model.__name__}.{name}"] = info
    return sorted(found.items())


FIELDS = integer_fields()


def test_the_request_bodies_have_integer_fields() -> None:
    names = {name for name, _ in FIELDS}
    assert {"JobSpec.cpu", "JobSpec.duration", "Port.port", "Gpu.count"} <= names
    assert "BatchCreate.concurrency" in names


@pytest.mark.parametrize(("name", "info"), FIELDS, ids=[name for name, _ in FIELDS])
def test_each_integer_field_is_the_shared_integer_type(
    name: str, info: pydantic.fields.FieldInfo
) -> None:
    integral = typing.get_args(validation.Integer)[1]
    assert integral in info.metadata, f"{name} is a plain int: declare it as validation.Integer"
