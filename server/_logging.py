"""Structured logging: one line per event on stderr, `key=value` (logfmt) or a JSON object.

Every call site goes through `log_event(logger, level, event, **fields)`: the event is a
short fixed name (never an f-string), so lines can be grepped and parsed, and the fields ride
on the record as `record.fields`, the one place the formatter reads them. (Fields passed the
stdlib way, `extra={"processor": ...}`, become record attributes the formatter never sees.)
Payload (chunks, deltas, complete texts, outputs, tokens) is never logged, at any level;
chunk ids, identifiers the caller chose, are.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import traceback
from types import TracebackType

_LOGGER_NAME = "chunkwise"


_ExcInfo = bool | BaseException | None


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{_LOGGER_NAME}.{name}")


def log_event(
    logger: logging.Logger,
    level: int,
    event: str,
    /,
    *,
    exc_info: _ExcInfo = None,
    **fields: object,
) -> None:
    """Log `event` (a fixed name) at `level` (`logging.INFO`, ...) with `fields` as key=value.

    `exc_info` is as for `Logger.log`: True for the exception being handled, or an exception;
    the line then gets its type and traceback, never its message.
    """
    # stacklevel=2: the record names the call site, not this helper.
    logger.log(level, event, exc_info=exc_info, extra={"fields": fields}, stacklevel=2)


_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\r\t'):
        return text
    return '"' + text.translate(_ESCAPES) + '"'


#: The keys the formatter writes itself; a field never overwrites one.
_OWN_KEYS = frozenset({"ts", "level", "logger", "event", "exc_type", "traceback"})


def _parts(record: logging.LogRecord) -> dict[str, object]:
    """A record's keys in their order: ts, level, logger, event, the fields, and exc_type and
    traceback when an exception is logged. Both formats write exactly these."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    parts: dict[str, object] = {
        "ts": f"{stamp}.{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "event": record.getMessage(),
    }
    for key, value in getattr(record, "fields", {}).items():
        # Renamed rather than let through or dropped: the line stays parseable and the
        # value is still there.
        parts[f"field_{key}" if key in _OWN_KEYS else key] = value
    if record.exc_info and record.exc_info[0] is not None:
        # The exception's type and where it was raised, never its message: a message
        # may quote the text being processed.
        parts["exc_type"] = record.exc_info[0].__qualname__
        parts["traceback"] = _frames(record.exc_info[2])
    return parts


class KeyValueFormatter(logging.Formatter):
    """Formats a record as ``ts=... level=... logger=... event=... key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_quote(value)}" for key, value in _parts(record).items())


def _json_value(value: object) -> object:
    # Numbers, booleans and None stay themselves; anything else, and a float that JSON
    # cannot hold (inf, nan), is written as its str(), as the key=value form writes it.
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line, with the keys of KeyValueFormatter."""

    def format(self, record: logging.LogRecord) -> str:
        parts = {key: _json_value(value) for key, value in _parts(record).items()}
        # json.dumps escapes newlines inside strings, and (ensure_ascii) every non-ASCII
        # character, whatever stderr's encoding: the object stays on one line.
        return json.dumps(parts)


def _frames(tb: TracebackType | None) -> str:
    return " < ".join(
        f"{frame.filename}:{frame.lineno}:{frame.name}"
        for frame in reversed(traceback.extract_tb(tb))
    )


#: `--log-format` values; auto is json when stderr is not a terminal, else logfmt.
LOG_FORMATS = ("auto", "json", "logfmt")


def formatter(log_format: str, stream: object = None) -> logging.Formatter:
    """The formatter of `log_format` (see LOG_FORMATS); auto asks whether `stream`
    (stderr by default) is a terminal."""
    if log_format == "auto":
        stream = sys.stderr if stream is None else stream
        isatty = getattr(stream, "isatty", None)
        log_format = "logfmt" if isatty is not None and isatty() else "json"
    if log_format == "json":
        return JsonFormatter()
    if log_format == "logfmt":
        return KeyValueFormatter()
    raise ValueError(f"unknown log format {log_format!r}")


def configure(level: str, log_format: str = "logfmt") -> None:
    """Send chunkwise's log lines to stderr at `level` (a logging level name), in
    `log_format` (see LOG_FORMATS)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger(_LOGGER_NAME)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
