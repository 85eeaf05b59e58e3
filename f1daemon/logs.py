"""Structured logs: one JSON object per line on stderr, which journald keeps as is.

Every record has `ts` (UTC, ISO 8601), `level`, `logger` and `msg`; values passed
with ``extra={"fields": {...}}`` are added as keys, so a log line can be queried
(`journalctl -u f1daemon -o cat | jq 'select(.source == "live")'`).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """Send every f1daemon log record, as JSON, to stderr (or `stream`)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    """Change the level at run time (a reloaded configuration)."""
    logging.getLogger().setLevel(level.upper())
