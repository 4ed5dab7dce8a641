"""A small Server-Sent Events reader over httpx, as a browser's EventSource would read."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    data: str = ""
    event: str = "message"
    id: str | None = None
    comments: list[str] = field(default_factory=list)
    received_at: float = 0.0

    def json(self) -> Any:
        return json.loads(self.data)


async def events(response: httpx.Response, *, with_comments: bool = False) -> AsyncIterator[Event]:
    current = Event()
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or (current.comments and with_comments):
                current.data = "\n".join(data)
                current.received_at = time.monotonic()
                yield current
            current, data = Event(), []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            current.comments.append(value)
        elif name == "data":
            data.append(value)
        elif name == "event":
            current.event = value
        elif name == "id":
            current.id = value
