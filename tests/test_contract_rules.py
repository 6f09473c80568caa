"""Rules of ../shared/CONTRACT.md that had no test through the real service that would fail
if they broke. Each test names its rule."""

from __future__ import annotations

import time

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT, Conversation

APPEND = pb.DELTA_MODE_APPEND
SNAPSHOT = pb.DELTA_MODE_SNAPSHOT
EXPIRY_SLACK = 10.0  # as in test_limits.py: the sweep runs about once a second


def read(stub, chunk_id: str) -> pb.GetCompleteTextResponse | None:
    try:
        return stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id=chunk_id), timeout=TIMEOUT)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return None


def code_of(response: pb.ProcessChunksResponse) -> grpc.StatusCode | None:
    if not response.HasField("error"):
        return None
    return next(c for c in grpc.StatusCode if c.value[0] == response.error.code)


@pytest.mark.parametrize(
    "refused",
    [
        {"processor_type": "json"},
        {"mode": SNAPSHOT},
        {"mode": 12},
        {"processor_type": "no-such-processor"},
    ],
    ids=["another processor", "another mode", "mode outside the enum", "unknown processor"],
)
def test_a_refused_final_is_not_final_and_the_id_stays_open(conversation, stub, refused):
    """ "A bad request gets a response with `error` set and changes nothing for that id";
    "a refused request (any other error) is not applied"; "`complete_text` is filled only on a
    final response". So a refused `final` answers final = false, and the id is still open."""
    conversation.send("open", "kept", mode=APPEND, sequence=1)
    response = conversation.send("open", "lost", final=True, sequence=2, **refused)
    assert code_of(response) in (
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert not response.final and response.complete_text == ""
    assert (response.chunk_id, response.sequence) == ("open", 2)
    info = read(stub, "open")
    assert (info.text, info.last_sequence) == ("kept", 1)
    done = conversation.send("open", "!", final=True, sequence=2)
    assert code_of(done) is None and done.final and not done.duplicate
    assert done.complete_text == "kept!"
    assert read(stub, "open") is None


def test_a_final_refused_for_its_response_size_is_not_final(server_factory):
    """ "A final whose response would not fit is refused with a clear error before the id is
    finished, so its text stays retrievable"."""
    server = server_factory(max_response_bytes=4096, max_chunk_bytes=4000, max_id_bytes=32)
    with server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        talk = Conversation(stub)
        talk.send("big", "x" * 4000, mode=APPEND, sequence=1)
        response = talk.send("big", "y" * 100, final=True, sequence=2)
        assert code_of(response) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not response.final and response.complete_text == ""
        assert read(stub, "big").text == "x" * 4000
        talk.close()


def test_an_id_written_to_keeps_living_while_an_idle_one_behind_it_expires(server_factory):
    """ "An id that no ProcessChunks request has touched for the idle time is forgotten ...
    within a few seconds of its expiry": also when an id created before it is still being
    written to (the sweep must not stop at that one)."""
    server = server_factory(idle_ttl=1)
    with server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        talk = Conversation(stub)
        talk.send("busy", "a", mode=APPEND)
        talk.send("idle", "b", mode=APPEND)
        written = time.monotonic()
        while read(stub, "idle") is not None:
            assert time.monotonic() - written < 1 + EXPIRY_SLACK, "the idle id never expired"
            talk.send("busy", ".")
            time.sleep(0.1)
        assert time.monotonic() - written >= 1.0
        assert read(stub, "busy") is not None
        talk.close()
