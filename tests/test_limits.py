"""Every limit of the contract, enforced through the real service with non-default values.

Invariant: past a limit, the request is refused with the contract's status and changes
nothing — the stream goes on (or, for a message over the wire limit, only that stream fails)
and every id keeps exactly the text it had. Under the id limit, remembered sequences of
finished ids count and the earliest finished go first, never a live id. Idle expiry: an id
that no ProcessChunks request touches for the TTL is forgotten within a few seconds; reads
do not keep it alive, writes do, and a finished id's remembered sequence expires too.
"""

from __future__ import annotations

import time

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT, Conversation

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
APPEND = pb.DELTA_MODE_APPEND
SNAPSHOT = pb.DELTA_MODE_SNAPSHOT

#: How long an idle id may outlive its TTL: the sweep runs about once a second, and a busy
#: 2-core machine can delay it; the contract says "within a few seconds".
EXPIRY_SLACK = 10.0


def text_of(stub: pb_grpc.StreamingParserStub, chunk_id: str) -> str:
    return stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id=chunk_id), timeout=TIMEOUT).text


def status_of_read(stub: pb_grpc.StreamingParserStub, chunk_id: str) -> grpc.StatusCode:
    try:
        stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id=chunk_id), timeout=TIMEOUT)
    except grpc.RpcError as error:
        return error.code()
    return OK


def error_code(response: pb.ProcessChunksResponse) -> grpc.StatusCode:
    if not response.HasField("error"):
        return OK
    return next(c for c in grpc.StatusCode if c.value[0] == response.error.code)


def assert_refused(response: pb.ProcessChunksResponse, code: grpc.StatusCode) -> None:
    assert error_code(response) == code, response
    assert response.delta == "" and not response.HasField("output")
    assert not response.duplicate


@pytest.fixture
def open_server(server_factory):
    """A server with the given settings, a stub and a conversation on it."""
    opened: list[tuple[grpc.Channel, Conversation]] = []

    def start(**settings):
        server = server_factory(**settings)
        channel = server.channel()
        stub = pb_grpc.StreamingParserStub(channel)
        conversation = Conversation(stub)
        opened.append((channel, conversation))
        return stub, conversation

    yield start
    for channel, conversation in opened:
        conversation.cancel()
        channel.close()


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("fits", "too_long"),
    [("i" * 8, "i" * 9), ("é" * 4, "é" * 4 + "i"), ("😀" * 2, "😀" * 2 + "i")],
    ids=["ascii", "two-byte", "four-byte"],
)
def test_chunk_id_bytes(open_server, fits: str, too_long: str) -> None:
    stub, conversation = open_server(max_id_bytes=8)
    assert error_code(conversation.send(fits, "kept", mode=APPEND)) == OK
    response = conversation.send(too_long, "x", mode=APPEND)
    assert_refused(response, INVALID)
    assert "9 bytes" in response.error.message and "8 bytes" in response.error.message
    for call, request in [
        (stub.GetCompleteText, pb.GetCompleteTextRequest(chunk_id=too_long)),
        (stub.ClearChunk, pb.ClearChunkRequest(chunk_id=too_long)),
    ]:
        with pytest.raises(grpc.RpcError) as error:
            call(request, timeout=TIMEOUT)
        assert error.value.code() == INVALID
    # The stream goes on, and the id that fits is untouched.
    assert conversation.send(fits, "!").delta == "!"
    assert text_of(stub, fits) == "kept!"


@pytest.mark.parametrize("mode", [APPEND, SNAPSHOT], ids=["append", "snapshot"])
def test_chunk_bytes(open_server, mode: int) -> None:
    stub, conversation = open_server(max_chunk_bytes=16)
    first = "0123456789abcdef"  # exactly 16 bytes
    assert conversation.send("c", first, mode=mode).delta == first
    too_big = first + "é" if mode == SNAPSHOT else "é" * 8 + "x"  # 18 and 17 bytes
    response = conversation.send("c", too_big)
    assert_refused(response, EXHAUSTED)
    assert "over the limit of 16 bytes" in response.error.message
    assert text_of(stub, "c") == first
    # A new id with a chunk past the limit is not created at all.
    assert_refused(conversation.send("new", "x" * 17), EXHAUSTED)
    assert status_of_read(stub, "new") == NOT_FOUND
    conversation.close()


def test_text_bytes(open_server) -> None:
    stub, conversation = open_server(max_text_bytes=32)
    assert conversation.send("t", "a" * 30, mode=APPEND).delta == "a" * 30
    assert_refused(conversation.send("t", "éé"), EXHAUSTED)  # 4 bytes: 34 in all
    assert text_of(stub, "t") == "a" * 30
    assert conversation.send("t", "é").delta == "é"  # exactly 32 bytes
    assert_refused(conversation.send("t", "b"), EXHAUSTED)
    final = conversation.send("t", "", final=True)
    assert error_code(final) == OK and final.complete_text == "a" * 30 + "é"
    # A snapshot that rewrites the text is held to the same limit.
    assert conversation.send("s", "x" * 32, mode=SNAPSHOT).delta == "x" * 32
    assert_refused(conversation.send("s", "y" * 33), EXHAUSTED)
    rewrite = conversation.send("s", "y" * 32)
    assert rewrite.reset and rewrite.delta == "y" * 32
    assert text_of(stub, "s") == "y" * 32
    conversation.close()


def test_message_bytes_fail_only_that_stream(server_factory) -> None:
    server = server_factory(max_message_bytes=2048)
    with server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        bystander = Conversation(stub)
        assert bystander.send("other", "before ", mode=APPEND).delta == "before "
        doomed = Conversation(stub)
        assert doomed.send("doomed", "y" * 1900, mode=APPEND).delta == "y" * 1900
        with pytest.raises(grpc.RpcError) as error:
            doomed.send("doomed", "y" * 2100)
        assert error.value.code() == EXHAUSTED
        # The server carries on: the other stream, new streams and the failed stream's
        # applied text are all still there.
        assert bystander.send("other", "after").delta == "after"
        assert text_of(stub, "doomed") == "y" * 1900
        fresh = Conversation(stub)
        assert fresh.send("doomed", "z").delta == "z"
        fresh.close()
        bystander.close()


@pytest.mark.parametrize("opener", ["[", '{"k":'], ids=["arrays", "objects"])
def test_json_depth(open_server, opener: str) -> None:
    _, conversation = open_server(max_json_depth=4)
    assert error_code(conversation.send("ok", opener * 4, processor_type="json")) == OK
    response = conversation.send("deep", opener * 5, processor_type="json")
    assert error_code(response) == INVALID
    # The fifth container opens at this offset, in code points.
    assert f"at offset {len(opener) * 4}" in response.error.message
    # Invalid JSON is still tracked text: its delta comes back.
    assert response.delta == opener * 5
    conversation.close()


# --------------------------------------------------------------------------- ids


def test_max_ids_refuses_a_new_id_and_never_drops_a_live_one(open_server) -> None:
    stub, conversation = open_server(max_ids=3)
    for chunk_id in "abc":
        assert error_code(conversation.send(chunk_id, chunk_id, mode=APPEND)) == OK
    assert_refused(conversation.send("d", "d", mode=APPEND), EXHAUSTED)
    assert status_of_read(stub, "d") == NOT_FOUND
    assert [text_of(stub, chunk_id) for chunk_id in "abc"] == ["a", "b", "c"]
    # A final without a sequence leaves nothing behind, so its place is free at once.
    assert conversation.send("a", "!", final=True).complete_text == "a!"
    assert error_code(conversation.send("d", "d", mode=APPEND)) == OK
    conversation.close()


def test_remembered_sequences_count_and_the_earliest_finished_go_first(open_server) -> None:
    stub, conversation = open_server(max_ids=3)
    conversation.send("a", "a1", mode=APPEND, sequence=1)
    assert conversation.send("a", "a2", sequence=2, final=True).complete_text == "a1a2"
    assert conversation.send("b", "b1", mode=APPEND, sequence=1, final=True).complete_text == "b1"
    conversation.send("c", "c1", mode=APPEND, sequence=1)
    # Full: c is live, a and b are remembered. Both are still duplicates.
    assert conversation.send("a", "a2", sequence=2).duplicate
    assert conversation.send("b", "b1", sequence=1).duplicate

    # A new id takes the place of the earliest finished one, a.
    assert error_code(conversation.send("d", "d1", mode=APPEND, sequence=1)) == OK
    assert conversation.send("b", "b1", sequence=1).duplicate
    again = conversation.send("a", "a2", mode=APPEND, sequence=2)
    assert not again.duplicate and again.delta == "a2", "a's sequence was dropped: a new id"
    assert text_of(stub, "a") == "a2"

    # That new a took b's place; now c, d and a are live and nothing may be dropped.
    refused = conversation.send("b", "b1", mode=APPEND, sequence=1)
    assert_refused(refused, EXHAUSTED)
    assert [text_of(stub, chunk_id) for chunk_id in "cda"] == ["c1", "d1", "a2"]
    assert [conversation.send(i, "+").delta for i in "cda"] == ["+", "+", "+"]
    conversation.close()


def test_a_refused_new_id_drops_no_remembered_sequence(open_server) -> None:
    _, conversation = open_server(max_ids=2, max_text_bytes=4)
    for chunk_id in "ab":
        conversation.send(chunk_id, "x", mode=APPEND, sequence=1, final=True)
    # Refused by the text limit: a request that changes nothing makes no room either.
    assert_refused(conversation.send("c", "12345", mode=APPEND, sequence=1), EXHAUSTED)
    assert conversation.send("a", "x", sequence=1).duplicate
    assert conversation.send("b", "x", sequence=1).duplicate
    conversation.close()


# --------------------------------------------------------------------------- idle expiry


def wait_until_not_found(stub: pb_grpc.StreamingParserStub, chunk_id: str, since: float) -> float:
    """Read the id every 50 ms until it is gone; the seconds from `since` until then."""
    deadline = since + 1 + EXPIRY_SLACK
    while time.monotonic() < deadline:
        code = status_of_read(stub, chunk_id)
        if code == NOT_FOUND:
            return time.monotonic() - since
        assert code == OK
        time.sleep(0.05)
    pytest.fail(f"{chunk_id!r} was still tracked {EXPIRY_SLACK} s after its TTL")


def test_an_idle_id_expires_and_reads_do_not_keep_it(open_server) -> None:
    stub, conversation = open_server(idle_ttl=1)
    conversation.send("idle", "text", mode=APPEND, sequence=7)
    written = time.monotonic()
    gone_after = wait_until_not_found(stub, "idle", written)
    assert gone_after >= 1.0
    # Forgotten as by ClearChunk: its sequence too, so a resend is applied as new text.
    again = conversation.send("idle", "new", mode=APPEND, sequence=7)
    assert not again.duplicate and again.delta == "new"
    assert text_of(stub, "idle") == "new"
    conversation.close()


def test_writes_keep_an_id_alive(open_server) -> None:
    stub, conversation = open_server(idle_ttl=1)
    conversation.send("busy", "", mode=APPEND)
    written = ""
    started = time.monotonic()
    # Three TTLs of writes a fifth of a TTL apart: the id must survive all of them.
    while time.monotonic() - started < 3:
        time.sleep(0.2)
        piece = f"{len(written)},"
        response = conversation.send("busy", piece)
        assert error_code(response) == OK and response.delta == piece
        written += piece
        assert text_of(stub, "busy") == written
    last_write = time.monotonic()
    assert wait_until_not_found(stub, "busy", last_write) >= 1.0
    conversation.close()


def test_a_finished_ids_remembered_sequence_expires(open_server) -> None:
    _, conversation = open_server(idle_ttl=1)
    conversation.send("done", "all", mode=APPEND, sequence=5, final=True)
    finished = time.monotonic()
    assert conversation.send("done", "all", sequence=5).duplicate
    # Resending the same request is harmless while it is a duplicate; the first one that is
    # not shows the sequence was forgotten.
    deadline = finished + 1 + EXPIRY_SLACK
    while True:
        response = conversation.send("done", "again", mode=APPEND, sequence=5)
        if not response.duplicate:
            break
        assert time.monotonic() < deadline, "the remembered sequence never expired"
        time.sleep(0.1)
    assert time.monotonic() - finished >= 1.0
    assert error_code(response) == OK and response.delta == "again"
    conversation.close()
