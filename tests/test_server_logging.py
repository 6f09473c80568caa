"""Log lines: one parseable key=value line per event, nothing of the payload."""

import io
import logging
import shlex
import sys

from server._logging import KeyValueFormatter, log_event
from server.app import listen_address


def record(message: str, fields: dict, exc_info=None) -> logging.LogRecord:
    rec = logging.LogRecord("chunkwise.test", logging.INFO, __file__, 1, message, (), exc_info)
    rec.fields = fields
    return rec


def test_values_with_spaces_quotes_and_newlines_stay_on_one_parseable_line() -> None:
    awkward = 'a b "c"\nd\\e\tf=g'
    line = KeyValueFormatter().format(record("stream closed", {"peer": awkward, "requests": 3}))
    assert "\n" not in line
    parsed = dict(part.split("=", 1) for part in shlex.split(line))
    assert parsed["event"] == "stream closed"
    assert parsed["requests"] == "3"
    # shlex undoes the quoting; the escaped newline and tab come back as their escapes.
    assert parsed["peer"] == 'a b "c"\\nd\\e\\tf=g'
    assert parsed["level"] == "info" and parsed["logger"] == "chunkwise.test"


def test_an_exception_is_logged_by_type_and_place_never_by_message() -> None:
    try:
        raise ValueError("secret chunk text")
    except ValueError:
        line = KeyValueFormatter().format(record("bug", {}, sys.exc_info()))
    parsed = dict(part.split("=", 1) for part in shlex.split(line))
    assert parsed["exc_type"] == "ValueError"
    assert "test_an_exception_is_logged_by_type_and_place_never_by_message" in parsed["traceback"]
    assert "secret" not in line


def test_listen_addresses() -> None:
    assert listen_address("127.0.0.1", 50051) == "127.0.0.1:50051"
    assert listen_address("localhost", 0) == "localhost:0"
    assert listen_address("::", 7) == "[::]:7"


def emit(*args, **kwargs) -> str:
    """The line `log_event(logger, *args, **kwargs)` writes through the server's formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter())
    logger = logging.getLogger("chunkwise.test.emit")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        log_event(logger, *args, **kwargs)
    finally:
        logger.handlers.clear()
    return stream.getvalue()


def test_fields_given_to_log_event_are_in_the_line() -> None:
    line = emit(logging.WARNING, "processor plugin skipped", processor="my plugin", count=2)
    parsed = dict(part.split("=", 1) for part in shlex.split(line))
    assert parsed["event"] == "processor plugin skipped"
    assert parsed["level"] == "warning"
    assert parsed["processor"] == "my plugin"
    assert parsed["count"] == "2"


def test_a_field_named_like_the_formatters_own_keys_overwrites_nothing() -> None:
    line = emit(logging.INFO, "listening", ts="then", traceback="made up")
    parsed = dict(part.split("=", 1) for part in shlex.split(line))
    assert parsed["ts"] != "then" and "traceback" not in parsed
    assert (parsed["field_ts"], parsed["field_traceback"]) == ("then", "made up")


def test_log_event_logs_an_exception_by_type_and_names_its_call_site() -> None:
    try:
        raise ValueError("secret chunk text")
    except ValueError:
        line = emit(logging.ERROR, "bug in call", exc_info=True, rpc="ClearChunk")
    parsed = dict(part.split("=", 1) for part in shlex.split(line))
    assert (parsed["rpc"], parsed["exc_type"]) == ("ClearChunk", "ValueError")
    assert "secret" not in line


def test_the_record_names_the_caller_of_log_event() -> None:
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("chunkwise.test.caller")
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    try:
        log_event(logger, logging.INFO, "stopped")
    finally:
        logger.handlers.clear()
    assert records[0].funcName == "test_the_record_names_the_caller_of_log_event"
