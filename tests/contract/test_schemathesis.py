"""Schemathesis over the OpenAPI document, against a real gateway process: for every operation,
generated requests (with an admin key) never answer 5xx, answer only the statuses and content
types the document lists, and bodies that conform to the documented schemas.

Bounded and reproducible: MAX_EXAMPLES requests per operation, derandomized (the same cases
on every run), no example database."""

from __future__ import annotations

import re
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import openapi
from app.application import API_ROUTES
from tests.contract.gateway import seed, serving
from tests.factories import Keys

# 35 operations x 25 examples (shrinking aside): under nine hundred requests.
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

SCHEMA = schemathesis.openapi.from_dict(openapi.document(API_ROUTES))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="module")
def gateway(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(database_url, tmp_path_factory.mktemp("schemathesis") / "gateway.log") as url:
        yield url.removesuffix(openapi.PREFIX)


@pytest.fixture
async def admin_key(keys: Keys) -> str:
    return await keys.create(account="schemathesis", scope=("admin",))


@pytest.fixture
def known(gateway: str, admin_key: str) -> dict[str, str]:
    return seed(gateway + openapi.PREFIX, admin_key)


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_operation_answers_as_documented(
    gateway: str, admin_key: str, known: dict[str, str], operation: schemathesis.APIOperation
) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    # Half the cases on resources that exist (random identifiers only ever find nothing).
    existing = {name: known[name] for name in re.findall(r"{(\w+)}", operation.path)}
    cases = operation.as_strategy()
    if existing:
        cases = st.one_of(cases, operation.as_strategy(path_parameters=existing))

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
    )
    @hypothesis.given(case=cases)
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=gateway, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()
