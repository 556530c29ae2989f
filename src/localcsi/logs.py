"""Structured logging: one JSON object per line on stderr, or readable text.

Attach structured fields to a record with ``extra=fields(...)``, which is shorthand for
``extra={"fields": {...}}``::

    log.info("volume created", extra=fields(volume="pvc-1", size_bytes=1 << 30))

In JSON each field becomes a top-level key beside ``ts``, ``level``, ``logger`` and ``msg`` (and
``exc`` when an exception is logged). A field whose name clashes with one of those keys is written as
``field_<name>`` instead, so it never hides the record's own data.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

LEVELS: Final = ("debug", "info", "warning", "error")
FORMATS: Final = ("json", "text")
FIELDS_KEY: Final = "fields"
_RECORD_KEYS: Final = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})


def fields(**values: object) -> dict[str, dict[str, object]]:
    """Structured fields for a log call: ``log.info("msg", extra=fields(key=value))``."""
    return {FIELDS_KEY: values}


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The structured fields attached to ``record``, or an empty dict."""
    values = getattr(record, FIELDS_KEY, None)
    if isinstance(values, Mapping):
        return {str(key): value for key, value in values.items()}
    if values is None:
        return {}
    return {FIELDS_KEY: values}  # not a mapping: keep it visible rather than drop it


def rfc3339_utc(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, the record's fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": rfc3339_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            entry[f"field_{key}" if key in _RECORD_KEYS else key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _text_value(value: object) -> str:
    text = str(value)
    if not text or any(char.isspace() or char in '"=' for char in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger>: <msg> key=value ...`` then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{rfc3339_utc(record.created)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in record_fields(record).items())
        if pairs:
            line = f"{line} {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


class ConsoleHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at emit time (so redirections and test capture work)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def configure(level: str, fmt: str) -> None:
    """Send all logging to stderr at ``level`` in format ``fmt``; calling it again reconfigures."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ConsoleHandler)]:
        root.removeHandler(handler)
    handler = ConsoleHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
