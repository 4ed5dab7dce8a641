"""The repository's copy of the published Jobs API documentation is the published one."""

from __future__ import annotations

import pytest

from tests.contract.published import DOCUMENT, ORIGINAL, examples


@pytest.mark.skipif(not ORIGINAL.exists(), reason="shared/ is not beside this repository")
def test_the_copy_in_docs_reference_is_the_published_document() -> None:
    assert DOCUMENT.read_text() == ORIGINAL.read_text(), (
        f"{DOCUMENT} differs from {ORIGINAL}: copy the published document again"
    )


def test_the_copy_holds_the_examples_the_replay_runs() -> None:
    found = examples(DOCUMENT.read_text())
    assert len(found) >= 12
    assert {example.method for example in found} >= {"GET", "POST"}
