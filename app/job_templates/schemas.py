"""Job templates in the API's camelCase shapes. A template's config is a job specification,
checked by the very model that checks POST /jobs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel

from app import pagination
from app.envelope import Timestamp
from app.jobs.schemas import JobSpec

SORT_FIELDS = ("createdAt", "updatedAt", "name")
MAX_NAME_LENGTH = 100
MAX_DESCRIPTION_LENGTH = 1000

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    Field(description="Unique within the account."),
]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION_LENGTH)]
# Stored and shown as submitted; the schema is JobSpec's.
StoredSpec = Annotated[
    dict[str, Any], WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/JobSpec"}]})
]


class _Input(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
    )


class TemplateCreate(_Input):
    name: Name
    description: Description | None = None
    config: JobSpec = Field(description="A job specification, as POST /jobs takes it.")


class TemplateUpdate(_Input):
    """Only the fields given change; a new config replaces the old one whole."""

    name: Name | None = None
    description: Description | None = None
    config: JobSpec | None = None


class JobFromTemplate(_Input):
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields of a job specification that replace the template's, as a JSON "
        "merge patch (RFC 7386): objects such as env merge by key (null removes a key), "
        "lists such as ports replace the template's, other values replace.",
    )


class Template(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str = Field(examples=["tpl_1a2b3c4d5e6f7a8b"])
    name: str
    description: str | None
    config: StoredSpec
    created_at: Timestamp
    updated_at: Timestamp


class TemplateListQuery(BaseModel):
    """Query parameters of GET /jobs/templates."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=1_000_000)
    limit: int = Field(default=20, ge=1, le=100)
    sort: str = Field(
        default="createdAt:desc", description="field:asc|desc over createdAt, updatedAt, name."
    )

    @field_validator("sort")
    @classmethod
    def _known_sort(cls, value: str) -> str:
        pagination.parse_sort(value, SORT_FIELDS)
        return value
