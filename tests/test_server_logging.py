"""Log lines: one parseable key=value line per event, nothing of the payload."""

import logging
import shlex
import sys

from server._logging import KeyValueFormatter
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
