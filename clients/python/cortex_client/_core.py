"""What the sync and async clients share: how a call is described, how an answer is read,
when to retry, how pages follow one another and how a stream resumes. No I/O here."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx
from httpx_sse import ServerSentEvent
from pydantic import BaseModel, TypeAdapter

from cortex_client import errors
from cortex_client.models import Pagination

T = TypeVar("T")
Item = TypeVar("Item")

# The gateway's base path (app.openapi.PREFIX, which a test compares); not imported
# from there, because that module loads the whole server and the CLI starts on every command.
PREFIX = "/api/plugin-core"
RETRY_STATUSES = (429, 503)
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "cortex-gateway-client"


def api_base(url: str) -> str:
    """`http://host:8000` or `http://host:8000/api/plugin-core` -> the API's base URL."""
    url = url.rstrip("/")
    return url if url.endswith(PREFIX) else url + PREFIX


class Envelope(BaseModel, Generic[T]):
    success: bool
    data: T
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class Page(Generic[Item]):
    """One page of a listing and where it sits among the others."""

    items: list[Item]
    pagination: Pagination


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer: `data` is validated as `model` (a type or a
    TypeAdapter target); `paged` calls answer a `Page`; `model=None` expects no body."""

    method: str
    path: str
    model: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    paged: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    def read(self, response: httpx.Response) -> T:
        if not response.is_success:
            raise errors.from_response(response)
        if self.model is None:
            return None  # type: ignore[return-value]
        envelope = _adapter(self.model).validate_json(response.content)
        if self.paged:
            meta = envelope.meta or {}
            return Page(envelope.data, Pagination.model_validate(meta["pagination"]))  # type: ignore[return-value]
        return envelope.data  # type: ignore[no-any-return]

    def next_page(self, page: Page[Any]) -> Call[T] | None:
        """The call for the page after `page`: by cursor where the listing has them."""
        info = page.pagination
        params = {k: v for k, v in self.params.items() if k not in ("page", "cursor")}
        if info.next_cursor is not None:
            return replace(self, params={**params, "cursor": info.next_cursor})
        if "cursor" not in self.params and info.page < info.pages and page.items:
            return replace(self, params={**params, "page": info.page + 1})
        return None


_adapters: dict[Any, TypeAdapter[Any]] = {}


def _adapter(model: Any) -> TypeAdapter[Any]:
    if model not in _adapters:
        _adapters[model] = TypeAdapter(Envelope[model])
    return _adapters[model]


def idempotent(key: str | None) -> dict[str, str]:
    """An `Idempotency-Key` for a submission: the caller's, or a fresh one. The same key goes
    with every retry of the call, so a retried submission never creates a second job."""
    return {IDEMPOTENCY_HEADER: key or str(uuid.uuid4())}


def query(**params: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; lists comma-joined, datetimes in ISO 8601."""
    result: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        result[name] = value
    return result


@dataclass(frozen=True)
class RetryPolicy:
    """429 and 503 answers are retried `max_retries` times, after the `Retry-After` the
    gateway sent (or a doubling backoff without one); a wait longer than `max_wait` is not
    worth it, and the error is raised at once."""

    max_retries: int = 3
    backoff: float = 0.5
    max_wait: float = 60.0

    def delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None to give the answer as it is."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        wait = retry_after(response)
        if wait is None:
            wait = self.backoff * 2**attempt
        return wait if wait <= self.max_wait else None


def retry_after(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds: delta-seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


END = object()


@dataclass(frozen=True)
class StreamCall(Generic[Item]):
    """A Server-Sent Events route and how each event becomes an item."""

    path: str
    parse: Any  # Callable[[ServerSentEvent], Item]
    params: dict[str, Any] = field(default_factory=dict)


class Resume:
    """Where a followed stream stands, so that a reconnection asks for exactly what is missing.

    The gateway's events carry ids; a reconnection sends the last one as `Last-Event-ID` and
    gets every later event, none twice. A stream that closes without its `end` event, a reset
    connection, a gateway that is restarting (refused connections, 502/503/504, 429) are all
    retried with a growing delay for `reconnect_for` seconds since the last event or
    connection; any other error answer is raised."""

    def __init__(
        self, call: StreamCall[Any], last_event_id: str | None, reconnect_for: float, url: str
    ):
        self.call = call
        self.url = url
        self.last_event_id = last_event_id
        self.reconnect_for = reconnect_for
        self._attempt = 0
        self._since = time.monotonic()
        self._connected = False

    def params(self) -> dict[str, Any]:
        if self.last_event_id is None:
            return {**self.call.params, "follow": "true"}
        # tail and since only place the first connection; the id places every later one.
        params = {k: v for k, v in self.call.params.items() if k not in ("tail", "since")}
        return {**params, "follow": "true"}

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def connected(self) -> None:
        self._attempt = 0
        self._since = time.monotonic()
        self._connected = True

    def receive(self, event: ServerSentEvent) -> Any:
        """The item an event carries, `END` for the final event, None for anything else."""
        if event.event == "end":
            return END
        if event.event not in ("message", "") or not event.data:
            return None
        item = self.call.parse(event)
        if event.id:
            self.last_event_id = event.id
        self._since = time.monotonic()
        return item

    def refused(self, response: httpx.Response) -> float:
        """The wait before reconnecting after an error answer, or raise it."""
        if response.status_code not in (429, 502, 503, 504):
            raise errors.from_response(response)
        wait = retry_after(response)
        return self.dropped(errors.from_response(response), at_least=wait or 0.0)

    def dropped(self, cause: BaseException, *, at_least: float = 0.0) -> float:
        """The wait before reconnecting after a lost connection, or raise when it has been
        failing for longer than `reconnect_for`. A gateway that never answered is not
        waited for: a wrong URL fails at once."""
        if isinstance(cause, httpx.TransportError) and not self._connected:
            raise connection_failed(cause, self.url)
        if time.monotonic() - self._since > self.reconnect_for:
            if isinstance(cause, errors.CortexError):
                raise cause
            raise errors.ConnectionFailed(
                f"the stream {self.call.path} was lost and could not be resumed "
                f"for {self.reconnect_for:.0f} s: {cause}"
            ) from cause
        self._attempt += 1
        return max(at_least, min(2.0, 0.1 * 2.0 ** (self._attempt - 1)))


def connection_failed(exc: httpx.TransportError, url: str) -> errors.ConnectionFailed:
    return errors.ConnectionFailed(
        f"cannot reach the gateway at {url}: {str(exc) or type(exc).__name__}"
    )


def headers(api_key: str | None) -> dict[str, str]:
    result = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        result["Authorization"] = f"Bearer {api_key}"
    return result
