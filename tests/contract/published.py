"""The example requests of the published Jobs API documentation, read from its code blocks so
that the replay follows the document as it is. The repository carries it as
docs/reference/jobs-api.md (CI runs on a clone with nothing beside it); a test checks that copy
against shared/reference/jobs-api.md whenever that is beside the repository.

In each `## ` section, the example requests are its `curl` commands; a section without any has
its endpoint blocks (``` GET /api/plugin-core/... ```) as requests instead, each with the JSON
block that follows it as its body. The JSON block under an `Example Response` heading is what
the section's request answers, and a javascript example names the fields it reads
(`logEntry.line`)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]
DOCUMENT = REPOSITORY / "docs" / "reference" / "jobs-api.md"
# Where the team keeps the published original, when the repository sits beside it.
ORIGINAL = REPOSITORY.parent / "shared" / "reference" / "jobs-api.md"
PREFIX = "/api/plugin-core"

_FENCE = re.compile(r"^```(\w*)\s*$")
_ENDPOINT = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/api/\S+)$")


@dataclass
class Block:
    language: str
    text: str
    line: int  # where the block's first line is, 1-based
    heading: str  # the `## ` section
    subheading: str  # the last `### ` heading before it, if any


@dataclass
class Example:
    section: str
    line: int
    method: str
    path: str  # under PREFIX, with the document's placeholders
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    response: Any = None  # the documented response, None where the document shows none
    reads: tuple[str, ...] = ()  # fields a code example reads from each streamed item

    @property
    def name(self) -> str:
        return f"{self.section}: {self.method} {self.path} (jobs-api.md:{self.line})"


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    heading = subheading = ""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            heading, subheading = line[3:].strip(), ""
        elif line.startswith("### "):
            subheading = line[4:].strip()
        fence = _FENCE.match(line)
        if fence:
            end = index + 1
            while not lines[end].startswith("```"):
                end += 1
            body = "\n".join(lines[index + 1 : end])
            found.append(Block(fence[1], body, index + 2, heading, subheading))
            index = end
        index += 1
    return found


def _json(text: str) -> Any:
    """JSON as the document writes it: `// ...` comments stand for more of the same."""
    kept = (line for line in text.splitlines() if not line.strip().startswith("//"))
    return json.loads("\n".join(kept))


def _curl(block: Block) -> Example:
    words = shlex.split(block.text.replace("\\\n", " "))
    assert words[0] == "curl", block.text
    method, url, headers, body = "GET", "", {}, None
    position = 1
    while position < len(words):
        word = words[position]
        if word == "-X":
            method, position = words[position + 1], position + 2
        elif word == "-H":
            name, _, value = words[position + 1].partition(":")
            headers[name.strip()] = value.strip()
            position += 2
        elif word == "-d":
            body, position = json.loads(words[position + 1]), position + 2
        else:
            url, position = word, position + 1
    path = url[url.index(PREFIX) + len(PREFIX) :]
    return Example(block.heading, block.line, method, path, headers, body)


def examples(text: str) -> list[Example]:
    found: list[Example] = []
    by_section: dict[str, list[Block]] = {}
    for block in blocks(text):
        by_section.setdefault(block.heading, []).append(block)
    for section, section_blocks in by_section.items():
        curls = [b for b in section_blocks if b.language == "bash" and "curl" in b.text]
        requests: list[Example] = [_curl(block) for block in curls]
        if not curls:
            for block in section_blocks:
                endpoint = _ENDPOINT.match(block.text.strip())
                if endpoint:
                    path = endpoint[2].removeprefix(PREFIX)
                    requests.append(Example(section, block.line, endpoint[1], path))
                elif (
                    block.language == "json"
                    and requests
                    and "Response" not in block.subheading
                    and requests[-1].body is None
                ):
                    requests[-1].body = _json(block.text)
        responses = [
            _json(b.text)
            for b in section_blocks
            if b.language == "json" and b.subheading == "Example Response"
        ]
        reads = tuple(
            sorted(
                {
                    name
                    for b in section_blocks
                    if b.language == "javascript"
                    for name in re.findall(r"logEntry\.(\w+)", b.text)
                }
            )
        )
        for request in requests:
            request.reads = reads
        if responses:
            assert len(requests) == len(responses), section
            for request, response in zip(requests, responses, strict=True):
                request.response = response
        found += requests
    return found


def published() -> list[Example]:
    if not DOCUMENT.exists():
        raise FileNotFoundError(f"The published documentation is not at {DOCUMENT}.")
    return examples(DOCUMENT.read_text())
