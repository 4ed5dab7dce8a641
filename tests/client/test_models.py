"""The client's own models and error table say what the gateway says.

The client does not import the server, so its models restate the server's; these tests hold
them to the gateway's OpenAPI document: a field added on one side only fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel

from app import errors as server_errors
from app import pagination
from cortex_client import errors, models
from tests.factories import API

CLIENT_MODELS: list[type[BaseModel]] = [getattr(models, name) for name in models.__all__]
# Not a component of the document: `meta.pagination` of every listing.
OUTSIDE_THE_DOCUMENT = {"Pagination": pagination.Pagination}


async def server_schemas(app_client: httpx.AsyncClient) -> dict[str, Any]:
    document = (await app_client.get(f"{API}/openapi.json")).json()
    schemas: dict[str, Any] = document["components"]["schemas"]
    for name, model in OUTSIDE_THE_DOCUMENT.items():
        schemas[name] = model.model_json_schema(by_alias=True, mode="serialization")
    return schemas


def fields(schema: dict[str, Any]) -> set[str]:
    return set(schema.get("properties", {}))


def required(schema: dict[str, Any]) -> set[str]:
    return set(schema.get("required", []))


def differences(
    schemas: dict[str, Any], names: Callable[[dict[str, Any]], set[str]]
) -> dict[str, dict[str, list[str]]]:
    """Per model, the names (of its fields, or of its required fields) on one side only."""
    found = {}
    for model in CLIENT_MODELS:
        server = names(schemas.get(model.__name__, {}))
        client = names(model.model_json_schema(by_alias=True))
        if server != client:
            found[model.__name__] = {
                "server only": sorted(server - client),
                "client only": sorted(client - server),
            }
    return found


class TestModels:
    async def test_every_model_is_one_of_the_servers(self, app_client: httpx.AsyncClient) -> None:
        schemas = await server_schemas(app_client)
        assert [m.__name__ for m in CLIENT_MODELS if m.__name__ not in schemas] == []

    async def test_every_model_has_the_servers_fields_by_their_json_names(
        self, app_client: httpx.AsyncClient
    ) -> None:
        assert differences(await server_schemas(app_client), fields) == {}

    async def test_a_field_is_required_on_both_sides_or_neither(
        self, app_client: httpx.AsyncClient
    ) -> None:
        # A response field the client requires but the server may omit would fail to read;
        # a JobSpec field the server requires but the client does not would fail to submit.
        assert differences(await server_schemas(app_client), required) == {}

    def test_a_job_spec_takes_any_provider_name_the_gateway_may_know(self) -> None:
        spec = models.JobSpec(
            provider="a-plugin",
            image="busybox:latest",
            cpu=500,
            memory="64Mi",
            storage="1Gi",
            duration=60,
            max_price_per_hour=0.5,
        )
        assert spec.model_dump(by_alias=True, exclude_unset=True)["provider"] == "a-plugin"
        assert spec.model_dump(by_alias=True, exclude_unset=True)["maxPricePerHour"] == 0.5


class TestErrors:
    def test_the_error_table_is_the_servers(self) -> None:
        server = {
            cls.code: (cls.__name__, cls.status_code, (cls.__doc__ or "").strip())
            for cls in server_errors.ALL_ERRORS
        }
        client = {
            code: (cls.__name__, cls.status_code, (cls.__doc__ or "").strip())
            for code, cls in errors.BY_CODE.items()
        }
        assert client == server

    def test_each_code_is_a_class_of_the_errors_module(self) -> None:
        for cls in errors.BY_CODE.values():
            assert getattr(errors, cls.__name__) is cls
            assert issubclass(cls, errors.ApiError)
