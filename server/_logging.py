"""Structured logging: one `key=value` line per event on stderr.

Call sites pass their fields as ``extra={"fields": {...}}``; the message itself is a short
fixed event name, so lines can be grepped and parsed. Payload text (chunks, complete texts)
is never logged at INFO or above.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from types import TracebackType

_LOGGER_NAME = "chunkwise"


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{_LOGGER_NAME}.{name}")


_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\r\t'):
        return text
    return '"' + text.translate(_ESCAPES) + '"'


class KeyValueFormatter(logging.Formatter):
    """Formats a record as ``ts=... level=... logger=... event=... key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        parts.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            # The exception's type and where it was raised, never its message: a message
            # may quote the text being processed.
            parts["exc_type"] = record.exc_info[0].__qualname__
            parts["traceback"] = _frames(record.exc_info[2])
        return " ".join(f"{key}={_quote(value)}" for key, value in parts.items())


def _frames(tb: TracebackType | None) -> str:
    return " < ".join(
        f"{frame.filename}:{frame.lineno}:{frame.name}"
        for frame in reversed(traceback.extract_tb(tb))
    )


def configure(level: str) -> None:
    """Send chunkwise's log lines to stderr at `level` (a logging level name)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger(_LOGGER_NAME)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
