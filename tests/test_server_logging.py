"""Log lines: one parseable key=value line per event, nothing of the payload."""

import io
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT, Conversation

from server._logging import JsonFormatter, KeyValueFormatter, formatter, log_event
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


def test_json_lines_have_the_keys_of_the_key_value_lines() -> None:
    try:
        raise ValueError("secret chunk text")
    except ValueError:
        rec = record("bug", {"rpc": "ClearChunk", "n": 3, "ok": True, "x": 1.5}, sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "\n" not in line and "secret" not in line
    parsed = json.loads(line)
    assert list(parsed) == list(
        dict(p.split("=", 1) for p in shlex.split(KeyValueFormatter().format(rec)))
    )
    assert list(parsed)[:4] == ["ts", "level", "logger", "event"]
    assert (parsed["rpc"], parsed["n"], parsed["ok"], parsed["x"]) == ("ClearChunk", 3, True, 1.5)
    assert parsed["exc_type"] == "ValueError" and parsed["traceback"]


def test_auto_format_is_json_unless_stderr_is_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(formatter("auto", io.StringIO()), JsonFormatter)
    assert isinstance(formatter("auto", Terminal()), KeyValueFormatter)
    assert isinstance(formatter("json", Terminal()), JsonFormatter)
    assert isinstance(formatter("logfmt", io.StringIO()), KeyValueFormatter)


PAYLOAD = "PAYLOAD-4f1c"


def _parse_json(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines()]


def _parse_logfmt(stderr: str) -> list[dict]:
    return [dict(part.split("=", 1) for part in shlex.split(line)) for line in stderr.splitlines()]


@pytest.mark.parametrize(
    ("flags", "parse"),
    # No flags: the defaults, INFO and auto, which is JSON as stderr is a pipe here.
    [((), _parse_json), (("--log-format", "logfmt"), _parse_logfmt)],
    ids=["default-json", "logfmt"],
)
def test_info_logs_start_stop_one_access_line_a_stream_and_each_refusal_never_payload(
    server_process, tmp_path: Path, flags: tuple[str, ...], parse
) -> None:
    token = f"{PAYLOAD}-token-0123456789"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"billing {token}\n")
    tokens.chmod(0o600)
    server = server_process(f"--auth-tokens={tokens}", *flags)
    requests = [
        pb.ProcessChunksRequest(chunk_id="doc-1", chunk=f"{PAYLOAD} one ", sequence=1,
                                mode=pb.DELTA_MODE_APPEND),
        pb.ProcessChunksRequest(chunk_id="doc-2", chunk='{"a": "' + PAYLOAD, processor_type="json"),
        # Refused: doc-1's processor is text.
        pb.ProcessChunksRequest(chunk_id="doc-1", chunk=f"{PAYLOAD} refused", sequence=2,
                                processor_type="json"),
        # Invalid JSON: an error, but the text is tracked, so not a refusal.
        pb.ProcessChunksRequest(chunk_id="doc-2", chunk=f'", x{PAYLOAD}'),
        pb.ProcessChunksRequest(chunk_id="doc-1", chunk=f"{PAYLOAD} end", sequence=3, final=True),
    ]  # fmt: skip
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        responses = list(
            stub.ProcessChunks(
                iter(requests),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=TIMEOUT,
            )
        )
    codes = [r.error.code for r in responses]
    assert codes == [0, 0, grpc.StatusCode.FAILED_PRECONDITION.value[0],
                     grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]  # fmt: skip
    assert PAYLOAD in responses[-1].complete_text
    server.terminate()
    status, stdout, stderr = server.wait()
    assert status == 0, stderr
    assert PAYLOAD not in stderr and PAYLOAD not in stdout
    lines = parse(stderr)
    assert [line["event"] for line in lines] == [
        "listening",
        "message refused",
        "stream ended",
        "stopped",
    ]
    assert all(line["level"] == "info" for line in lines)
    assert all(list(line)[:4] == ["ts", "level", "logger", "event"] for line in lines)
    listening, refused, ended, _ = lines
    assert str(listening["port"]) == str(server.port)
    assert (refused["chunk_id"], refused["code"]) == ("doc-1", "FAILED_PRECONDITION")
    assert str(refused["sequence"]) == "2"
    assert ended["peer"].startswith("ipv4:127.0.0.1:")
    assert ended["status"] == "OK"
    counts = {key: int(ended[key]) for key in ("messages", "chunk_ids", "bytes_in", "bytes_out")}
    assert counts == {
        "messages": 5,
        "chunk_ids": 2,
        "bytes_in": sum(r.ByteSize() for r in requests),
        "bytes_out": sum(r.ByteSize() for r in responses),
    }
    assert 0 <= float(ended["seconds"]) < TIMEOUT


def test_a_cancelled_stream_logs_its_access_line(
    grpc_server, caplog: pytest.LogCaptureFixture
) -> None:
    # Whatever an earlier test configured, each record reaches caplog once: pytest puts its
    # handler on the root and on every logger that does not propagate, as the server's own
    # logging setup leaves "chunkwise".
    caplog.set_level(logging.INFO, logger="chunkwise")
    with grpc_server.channel() as channel:
        talk = Conversation(pb_grpc.StreamingParserStub(channel))
        assert talk.send("doc", PAYLOAD, mode=pb.DELTA_MODE_APPEND).delta == PAYLOAD
        assert talk.send("", PAYLOAD).error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        # Cancelled before the half-close that cancel() also sends, which would end it OK.
        talk.responses.cancel()
        talk.cancel()
        deadline = time.monotonic() + TIMEOUT
        while not [r for r in caplog.records if r.getMessage() == "stream ended"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    records = [r for r in caplog.records if r.name.startswith("chunkwise")]
    assert [r.getMessage() for r in records] == ["message refused", "stream ended"]
    refused, ended = (r.fields for r in records)  # type: ignore[attr-defined]
    assert (refused["chunk_id"], refused["code"], refused["subject"]) == (
        "",
        "INVALID_ARGUMENT",
        "chunk_id",
    )
    # CANCELLED, or OK when grpc.aio ended the server's reads as for a half-close.
    assert ended["status"] in ("CANCELLED", "OK")
    assert (ended["messages"], ended["chunk_ids"]) == (2, 2)
    assert not any(PAYLOAD in JsonFormatter().format(r) for r in records)
