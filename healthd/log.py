"""Structured logs (one JSON object per line) with a redaction pass as a second line of defence.

Secrets are `Secret` objects and are never logged on purpose; the redaction processor
replaces any configured secret value that still turns up in an event (inside an
exception text from a third-party library, say) with a mask, as findings are redacted
(`healthd.secrets.Redactor`, one implementation for both).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from healthd.secrets import Redactor as TextRedactor


class Redactor(TextRedactor):
    """`healthd.secrets.Redactor` as a structlog processor: every string value of an event."""

    __slots__ = ()

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.redact(value)
        return event


def configure(
    secrets: Iterable[str] = (), *, level: str = "info", stream: TextIO | None = None
) -> None:
    out = stream or sys.stderr
    redactor = Redactor(secrets)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib logging; route their warnings through the same redaction.
    handler = logging.StreamHandler(out)
    handler.setFormatter(_RedactingFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self._redactor.redact(json.dumps(line))
