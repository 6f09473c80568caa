"""Bad input through the real service, as a table.

Every per-message case checks four things: the status code, that the message names what
was wrong, that the stream still answers afterwards, and what the id's tracked text is
after it (unchanged for a refusal; for invalid JSON the contract tracks the text, so the
text is the old text plus the chunk). Cases that fail a whole call or stream follow.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT, Conversation

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
APPEND = pb.DELTA_MODE_APPEND
SNAPSHOT = pb.DELTA_MODE_SNAPSHOT


@dataclass
class Case:
    name: str
    request: dict
    code: grpc.StatusCode
    says: str = ""  # a piece of the error message
    before: list[dict] = field(default_factory=list)  # requests that set the id up
    tracks_chunk: bool = False  # invalid JSON: the chunk is tracked all the same
    settings: dict = field(default_factory=dict)  # server settings for this case


def json_case(name: str, text: str, says: str, *, setup: str = "") -> Case:
    before = (
        [dict(chunk_id="doc", chunk=setup, processor_type="json", mode=APPEND)] if setup else []
    )
    request = dict(chunk_id="doc", chunk=text, processor_type="json", mode=APPEND)
    return Case(name, request, INVALID, says, before, tracks_chunk=True)


TRACKED = dict(chunk_id="doc", chunk="hello", processor_type="text", mode=APPEND)

CASES = [
    Case("empty id", dict(chunk_id="", chunk="x"), INVALID, "chunk_id is empty"),
    Case("id of 257 bytes", dict(chunk_id="i" * 257, chunk="x"), INVALID, "257 bytes"),
    Case(
        "id of 129 two-byte characters", dict(chunk_id="é" * 129, chunk="x"), INVALID, "258 bytes"
    ),
    Case(
        "id of 65 four-byte characters", dict(chunk_id="😀" * 65, chunk="x"), INVALID, "260 bytes"
    ),
    Case(
        "chunk over the chunk limit",
        dict(chunk_id="doc", chunk="x" * ((1 << 20) + 1)),
        EXHAUSTED,
        "chunk is 1048577 bytes",
        [TRACKED],
    ),
    Case(
        "multi-byte chunk over the chunk limit",
        dict(chunk_id="doc", chunk="é" * ((1 << 19) + 1)),
        EXHAUSTED,
        "1048578 bytes",
        [TRACKED],
    ),
    Case(
        "text past the per-id limit",
        dict(chunk_id="doc", chunk="x" * 996),
        EXHAUSTED,
        "over the limit of 1000 bytes",
        [TRACKED],
        settings=dict(max_text_bytes=1000),
    ),
    Case(
        "snapshot past the per-id limit",
        dict(chunk_id="doc", chunk="hello" + "x" * 996),
        EXHAUSTED,
        "over the limit of 1000 bytes",
        [dict(chunk_id="doc", chunk="hello", mode=SNAPSHOT)],
        settings=dict(max_text_bytes=1000),
    ),
    Case(
        "one id more than the ids limit",
        dict(chunk_id="fourth", chunk="x"),
        EXHAUSTED,
        "limit",
        [TRACKED, dict(chunk_id="two", chunk="x"), dict(chunk_id="three", chunk="x")],
        settings=dict(max_ids=3),
    ),
    Case(
        "unknown processor",
        dict(chunk_id="doc", chunk="x", processor_type="yaml"),
        INVALID,
        "unknown processor 'yaml'",
    ),
    Case(
        "unknown processor on a tracked id",
        dict(chunk_id="doc", chunk="x", processor_type="nope"),
        INVALID,
        "unknown processor",
        [TRACKED],
    ),
    Case(
        "processor change mid-id",
        dict(chunk_id="doc", chunk="x", processor_type="json"),
        PRECONDITION,
        "processor 'text'",
        [TRACKED],
    ),
    Case(
        "mode change mid-id",
        dict(chunk_id="doc", chunk="x", mode=SNAPSHOT),
        PRECONDITION,
        "mode APPEND",
        [TRACKED],
    ),
    Case(
        "mode outside the enum on a new id",
        dict(chunk_id="doc", chunk="x", mode=7),
        INVALID,
        "unknown delta mode 7",
    ),
    Case(
        "mode outside the enum on a tracked id, final",
        dict(chunk_id="doc", chunk="x", mode=99, final=True),
        INVALID,
        "unknown delta mode 99",
        [TRACKED],
    ),
    json_case("invalid JSON at the start", "x", "at offset 0"),
    json_case("invalid JSON in the middle", ',,"b": 2}', "at offset 8", setup='{"a": 1'),
    json_case("invalid JSON at the end", "}", "at offset 8", setup='{"a": 1}'),
    json_case("nesting 100,000 deep", "[" * 100_000, "nesting deeper than 512 at offset 512"),
    json_case("NaN", '{"a": NaN}', "at offset 6"),
    json_case("Infinity", "[Infinity]", "at offset 1"),
    json_case("a comment", '{"a": 1 // no\n}', "at offset 8"),
    json_case("a trailing comma", "[1, 2, ]", "at offset 7"),
    json_case("single quotes", "{'a': 1}", "at offset 1"),
    json_case("a leading zero", "[01]", "at offset 2"),
    json_case("a bad escape", '["a\\x"]', "at offset 4"),
    json_case("a bad unicode escape", '["\\u12G4"]', "at offset 6"),
    json_case("a second value", "{} {}", "at offset 3"),
]


def _text_of(stub: pb_grpc.StreamingParserStub, chunk_id: str) -> str | None:
    try:
        return stub.GetCompleteText(
            pb.GetCompleteTextRequest(chunk_id=chunk_id), timeout=TIMEOUT
        ).text
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_message_gets_its_error_and_the_stream_goes_on(server_factory, case: Case):
    server = server_factory(**case.settings)
    with server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        talk = Conversation(stub)
        for request in case.before:
            assert not talk.send(**request).HasField("error")
        chunk_id = case.request["chunk_id"]
        trackable = 0 < len(chunk_id.encode()) <= 256
        text_before = _text_of(stub, chunk_id) if trackable else None

        response = talk.send(**case.request)

        assert response.HasField("error"), response
        assert response.error.code == case.code.value[0], response.error
        assert case.says in response.error.message
        assert response.chunk_id == chunk_id
        assert not response.final  # a refused request never finishes its id
        if trackable:
            expected = (
                (text_before or "") + case.request["chunk"] if case.tracks_chunk else text_before
            )
            assert _text_of(stub, chunk_id) == expected
        # The stream still answers: on an id tracked before, or (with room) on a new one.
        probe = case.before[0]["chunk_id"] if case.before else "after"
        after = talk.send(chunk_id=probe, chunk="!")
        assert not after.HasField("error"), after.error
        assert after.chunk_id == probe and "!" in after.delta
        talk.close()


def test_after_invalid_json_later_chunks_are_tracked_without_output_or_error(conversation, stub):
    first = conversation.send("doc", "[1, x", processor_type="json", mode=APPEND)
    assert first.error.code == INVALID.value[0] and "at offset 4" in first.error.message
    later = conversation.send("doc", "]")
    assert not later.HasField("error") and not later.HasField("output") and later.delta == "]"
    assert _text_of(stub, "doc") == "[1, x]"


def test_final_on_unfinished_json_reports_the_end(conversation):
    conversation.send("doc", '{"a": [1, 2', processor_type="json", mode=APPEND)
    last = conversation.send("doc", "", final=True)
    assert last.error.code == INVALID.value[0]
    assert last.error.message == "unexpected end of JSON at offset 11"
    assert last.final and last.complete_text == '{"a": [1, 2'


def test_a_ten_megabyte_string_across_many_chunks(server_factory):
    server = server_factory()
    body = "abcdefghé\\n" * (10_000_000 // 11)
    document = json.dumps({"plan_markdown": body})
    with server.channel() as channel:
        talk = Conversation(pb_grpc.StreamingParserStub(channel))
        shown = []
        step = 1 << 19
        for start in range(0, len(document), step):
            response = talk.send(
                "big", document[start : start + step], processor_type="plan", mode=APPEND
            )
            assert not response.HasField("error")
            shown.append(response.output.text.message_chunk)
        last = talk.send("big", "", final=True)
        assert last.complete_text == document
        assert "".join(shown) == body == last.output.text.message
        talk.close()


def test_lone_surrogate_escapes_become_replacement_characters(conversation):
    response = conversation.send(
        "doc",
        '{"plan_markdown": "a\\ud800b\\udfffc"}',
        processor_type="plan",
        mode=APPEND,
        final=True,
    )
    assert not response.HasField("error")
    assert response.output.text.message == "a\ufffdb\ufffdc"


def test_a_number_of_100000_digits_is_carried_whole(conversation):
    digits = "7" * 100_000
    response = conversation.send(
        "doc", f"[{digits}]", processor_type="json", mode=APPEND, final=True
    )
    assert not response.HasField("error")
    assert [d.set_json for d in response.output.json.deltas] == ["[]", digits]


def test_sequence_going_backwards_is_a_duplicate_that_changes_nothing(conversation, stub):
    conversation.send("doc", "a", mode=APPEND, sequence=5)
    conversation.send("doc", "b", sequence=6)
    back = conversation.send("doc", "zzz", sequence=3)
    assert back.duplicate and back.delta == ""
    same = conversation.send("doc", "b", sequence=6)
    assert same.duplicate and same.delta == "b"
    info = stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="doc"), timeout=TIMEOUT)
    assert info.text == "ab" and info.last_sequence == 6


@pytest.mark.parametrize(
    "call, request_message, says",
    [
        ("GetCompleteText", pb.GetCompleteTextRequest(chunk_id=""), "chunk_id is empty"),
        ("GetCompleteText", pb.GetCompleteTextRequest(chunk_id="x" * 300), "300 bytes"),
        ("ClearChunk", pb.ClearChunkRequest(chunk_id=""), "chunk_id is empty"),
        ("ClearChunk", pb.ClearChunkRequest(chunk_id="é" * 200), "400 bytes"),
    ],
)
def test_unary_calls_refuse_bad_ids(stub, call, request_message, says):
    with pytest.raises(grpc.RpcError) as raised:
        getattr(stub, call)(request_message, timeout=TIMEOUT)
    assert raised.value.code() == INVALID
    assert says in raised.value.details()


def test_a_message_over_the_wire_limit_fails_only_its_stream(grpc_server, stub):
    survivor = Conversation(stub)
    survivor.send("kept", "before", mode=APPEND)
    doomed = stub.ProcessChunks(
        iter([pb.ProcessChunksRequest(chunk_id="big", chunk="x" * (5 << 20))]), timeout=TIMEOUT
    )
    with pytest.raises(grpc.RpcError) as raised:
        list(doomed)
    assert raised.value.code() == EXHAUSTED
    assert survivor.send("kept", " after").delta == " after"
    survivor.close()


def test_malformed_protobuf_fails_that_call_and_the_server_carries_on(grpc_server, channel, stub):
    raw = channel.stream_stream(
        "/chunkwise.v1.StreamingParser/ProcessChunks",
        request_serializer=lambda data: data,
        response_deserializer=lambda data: data,
    )
    # Field 2 (chunk) as a string whose bytes are not UTF-8, then a truncated varint.
    for garbage in (b"\x12\x02\xff\xfe", b"\x08\xff\xff\xff", b"\xff" * 64):
        with pytest.raises(grpc.RpcError) as raised:
            list(raw(iter([garbage]), timeout=TIMEOUT))
        assert raised.value.code() in (grpc.StatusCode.INTERNAL, INVALID, grpc.StatusCode.UNKNOWN)
    talk = Conversation(stub)
    assert talk.send("fine", "yes", mode=APPEND).delta == "yes"
    talk.close()


def test_garbage_bytes_on_the_port_do_not_hurt_the_server(grpc_server, stub):
    with socket.create_connection(("127.0.0.1", grpc_server.port), timeout=10) as sock:
        sock.sendall(os.urandom(4096))
        sock.settimeout(10)
        try:
            sock.recv(1024)
        except (TimeoutError, ConnectionResetError):
            pass
    talk = Conversation(stub)
    assert talk.send("fine", "yes", mode=APPEND).delta == "yes"
    talk.close()


def test_a_client_that_cancels_mid_stream_keeps_what_was_applied(stub):
    talk = Conversation(stub)
    talk.send("doc", "one ", mode=APPEND)
    talk.send("doc", "two")
    talk.cancel()
    assert _text_of(stub, "doc") == "one two"
    again = Conversation(stub)
    assert again.send("doc", " three").delta == " three"
    assert _text_of(stub, "doc") == "one two three"
    again.close()


def test_an_exceeded_deadline_ends_the_call_and_keeps_what_was_applied(stub):
    gate = threading.Event()

    def requests():
        yield pb.ProcessChunksRequest(chunk_id="doc", chunk="applied", mode=APPEND)
        gate.wait(TIMEOUT)

    call = stub.ProcessChunks(requests(), timeout=1.0)
    assert next(call).delta == "applied"
    with pytest.raises(grpc.RpcError) as raised:
        next(call)
    gate.set()
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert _text_of(stub, "doc") == "applied"


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_client_that_never_reads_cannot_make_the_server_buffer_without_bound(server_process):
    """Flow control: once the client's receive window is full the server stops writing, so
    it stops reading, and the client's own sends block. The server's memory stays flat."""
    server = server_process()
    sent = 0
    stop = threading.Event()
    chunk = "y" * 16_384

    def requests():
        nonlocal sent
        while not stop.is_set() and sent < 20_000:
            sent += 1
            yield pb.ProcessChunksRequest(chunk_id=f"id{sent % 50}", chunk=chunk, mode=APPEND)

    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        before = _rss_bytes(server.process.pid)
        call = stub.ProcessChunks(requests(), timeout=TIMEOUT)  # never iterated
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.5)
        stalled_at = sent
        time.sleep(2)
        growth = _rss_bytes(server.process.pid) - before
        stop.set()
        call.cancel()
    # Without flow control all 20,000 × 16 KiB (320 MB of responses) would pile up.
    assert stalled_at < 20_000, "the client was never held back"
    assert sent - stalled_at < 50, "sends went on while nothing was read"
    assert growth < 64 << 20, f"server grew by {growth} bytes"
    print(
        f"never-reading client: {stalled_at} requests sent before flow control held it; "
        f"server RSS grew {growth / 1e6:.1f} MB"
    )
