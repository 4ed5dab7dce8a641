"""The repository's copy of the published Jobs API documentation is the published one.

CI runs on a clone with nothing beside it, so the copy is pinned by the SHA-256 of the
published document it was taken from; where shared/ is beside the repository, the published
document must still have that digest (else: copy it again and update the digest)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.contract.published import DOCUMENT, ORIGINAL, examples

# SHA-256 of shared/reference/jobs-api.md when docs/reference/jobs-api.md was copied from it.
PUBLISHED_SHA256 = "c2084118935c3092f8f9a05899559094db363eb717d08a9f40bada6918fb5cd2"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_copy_in_docs_reference_is_the_published_document() -> None:
    assert _digest(DOCUMENT) == PUBLISHED_SHA256, f"{DOCUMENT} was edited: it is a verbatim copy"
    if ORIGINAL.exists():
        assert _digest(ORIGINAL) == PUBLISHED_SHA256, (
            f"{ORIGINAL} changed since it was copied: copy it to {DOCUMENT} and update the digest"
        )


def test_the_copy_holds_the_examples_the_replay_runs() -> None:
    found = examples(DOCUMENT.read_text())
    assert len(found) >= 12
    assert {example.method for example in found} >= {"GET", "POST"}
