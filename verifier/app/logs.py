"""Structured logs: one JSON object per line. Every value is JSON-escaped (``ensure_ascii``), so nothing a caller
sends (a newline in a model name, a control character, a lone surrogate) can forge or break a log line."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# attributes a log call may attach with ``extra=`` that become fields of the line
FIELDS = (
    "request_id",
    "key_id",
    "method",
    "route",
    "path",
    "status",
    "verdict_id",
    "verdict_status",
    "duration_ms",
    "remote",
    "model",
    "error_code",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=True, default=str, separators=(",", ":"))


def configure_json_logging(level: int = logging.INFO, stream: Any = None) -> None:
    """Route every logger (ours, aiohttp's) through one JSON-lines handler on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.Formatter.converter = time.gmtime
