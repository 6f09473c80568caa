"""Exactly-once text over dropped streams, through the real service with raw stubs.

Invariant: a client that numbers its requests per id and, after losing a stream, resends
everything it has no response for on a new stream ends with exactly its text — each
request applied once. A resent request that was already applied comes back
`duplicate = true` with the delta and output of the first time (or, once the server no
longer knows them, an empty delta); a resent final repeats the final's complete text;
sequence 0 is never a duplicate. State is in memory only: a restarted server knows no id.
"""

from __future__ import annotations

import json
import queue
import time

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import CLIENT_OPTIONS, TIMEOUT, Conversation
from helpers import cut, snapshots

APPEND = pb.DELTA_MODE_APPEND
SNAPSHOT = pb.DELTA_MODE_SNAPSHOT
AUTO = pb.DELTA_MODE_AUTO

DOCUMENT = '{"plan": ["alpha", "beta é 😀", {"n": 12.50, "ok": true}], "done": null}'
PIECES = cut(DOCUMENT, [4, 9, 17, 23, 31, 38, 44, 52, 61])
assert len(PIECES) == 10 and "".join(PIECES) == DOCUMENT


def chunks_for(mode: int) -> list[str]:
    """What a client sends in `mode`: the pieces, or the text so far each time. AUTO gets
    the text so far too, the one chunking its heuristic always tracks exactly."""
    return PIECES if mode == APPEND else snapshots(PIECES)


class RawStream:
    """A ProcessChunks stream whose requests are written without waiting for responses."""

    def __init__(self, stub: pb_grpc.StreamingParserStub) -> None:
        self._requests: queue.Queue[pb.ProcessChunksRequest | None] = queue.Queue()
        self._responses = stub.ProcessChunks(iter(self._requests.get, None), timeout=TIMEOUT)

    def write(self, request: pb.ProcessChunksRequest) -> None:
        self._requests.put(request)

    def read(self) -> pb.ProcessChunksResponse:
        return next(self._responses)

    def cancel(self) -> None:
        self._requests.put(None)
        self._responses.cancel()

    def close(self) -> None:
        self._requests.put(None)
        assert list(self._responses) == []


def request(chunk_id: str, mode: int, number: int, *, final: bool = False, first: bool = False):
    """Request `number` (from 1) of the id; only the first names the processor and mode."""
    chunk = chunks_for(mode)[number - 1] if number <= len(PIECES) else ""
    if final and mode != APPEND:
        chunk = DOCUMENT
    settings = dict(processor_type="json", mode=mode) if first else {}
    return pb.ProcessChunksRequest(
        chunk_id=chunk_id, chunk=chunk, sequence=number, final=final, **settings
    )


def all_requests(chunk_id: str, mode: int) -> list[pb.ProcessChunksRequest]:
    """Requests 1-10 carry the pieces, request 11 is the final."""
    return [request(chunk_id, mode, n, first=n == 1) for n in range(1, 11)] + [
        request(chunk_id, mode, 11, final=True)
    ]


def uninterrupted(stub: pb_grpc.StreamingParserStub, chunk_id: str, mode: int):
    """The responses of one stream that is never dropped: what the first time looks like."""
    responses = list(stub.ProcessChunks(iter(all_requests(chunk_id, mode)), timeout=TIMEOUT))
    assert [r.sequence for r in responses] == list(range(1, 12))
    assert not any(r.duplicate or r.HasField("error") for r in responses)
    return responses


def read(stub: pb_grpc.StreamingParserStub, chunk_id: str) -> pb.GetCompleteTextResponse:
    return stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id=chunk_id), timeout=TIMEOUT)


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def applied_through(stub: pb_grpc.StreamingParserStub, chunk_id: str, sequence: int) -> bool:
    return read(stub, chunk_id).last_sequence == sequence


def is_gone(stub: pb_grpc.StreamingParserStub, chunk_id: str) -> bool:
    try:
        read(stub, chunk_id)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return True
    return False


def same_answer(a: pb.ProcessChunksResponse, b: pb.ProcessChunksResponse) -> bool:
    return (a.delta, a.output, a.reset, a.complete_text) == (
        b.delta,
        b.output,
        b.reset,
        b.complete_text,
    )


@pytest.mark.parametrize("mode", [APPEND, SNAPSHOT, AUTO], ids=["append", "snapshot", "auto"])
def test_a_dropped_stream_resent_from_the_middle_gives_the_exact_text(stub, mode: int) -> None:
    first_time = uninterrupted(stub, "control", mode)
    requests = all_requests("doc", mode)

    # Eight requests go out; the client sees five responses before the stream drops, but
    # the server applied all eight.
    dropped = RawStream(stub)
    for r in requests[:8]:
        dropped.write(r)
    seen = [dropped.read() for _ in range(5)]
    wait_for(lambda: applied_through(stub, "doc", 8), "requests 1-8 applied")
    dropped.cancel()
    assert [r.sequence for r in seen] == [1, 2, 3, 4, 5]
    assert all(same_answer(r, f) for r, f in zip(seen, first_time, strict=False))

    # The new stream resends from request 4 on: two acknowledged, three applied but never
    # acknowledged, then three the server never had.
    resumed = RawStream(stub)
    for r in requests[3:]:
        resumed.write(r)
    answers = [resumed.read() for _ in requests[3:]]
    resumed.close()
    assert [r.sequence for r in answers] == list(range(4, 12))
    assert [r.duplicate for r in answers] == [True] * 5 + [False] * 3
    assert not any(r.HasField("error") for r in answers)
    for answer, original in zip(answers, first_time[3:], strict=True):
        assert same_answer(answer, original), (answer, original)
    assert answers[-1].final and answers[-1].complete_text == DOCUMENT
    value = json.loads(answers[-1].output.json.value_json)
    assert value == json.loads(DOCUMENT)
    assert "".join(r.delta for r in first_time) == DOCUMENT


def test_duplicates_of_old_requests_are_still_duplicates(stub) -> None:
    conversation = Conversation(stub)
    for r in all_requests("doc", APPEND)[:10]:
        conversation.send_raw(r)
    for number in range(1, 11):
        again = conversation.send_raw(request("doc", APPEND, number))
        assert again.duplicate
        # The delta of the first time, or empty once the server no longer keeps it.
        assert again.delta in ("", PIECES[number - 1])
        if not again.delta:
            assert not again.HasField("output")
    info = read(stub, "doc")
    assert (info.text, info.last_sequence) == (DOCUMENT, 10)
    conversation.close()


@pytest.mark.parametrize("mode", [APPEND, SNAPSHOT], ids=["append", "snapshot"])
def test_a_final_resent_after_it_was_applied_repeats_its_complete_text(stub, mode) -> None:
    first_time = uninterrupted(stub, "control", mode)
    requests = all_requests("doc", mode)
    conversation = Conversation(stub)
    for r in requests[:10]:
        conversation.send_raw(r)
    conversation.close()

    # The final is applied, but its response is lost with the stream.
    dropped = RawStream(stub)
    dropped.write(requests[10])
    wait_for(lambda: is_gone(stub, "doc"), "the final applied")
    dropped.cancel()

    resumed = Conversation(stub)
    again = resumed.send_raw(requests[10])
    assert again.duplicate and again.final
    assert again.complete_text == DOCUMENT
    assert same_answer(again, first_time[10])
    # An earlier request of the finished id is a duplicate too, and revives nothing.
    assert resumed.send_raw(requests[9]).duplicate
    assert is_gone(stub, "doc")
    resumed.close()


def test_sequence_0_is_never_a_duplicate(stub) -> None:
    conversation = Conversation(stub)
    assert conversation.send("plain", "x", mode=APPEND).delta == "x"
    again = conversation.send("plain", "x")
    assert not again.duplicate and again.delta == "x"
    numbered = conversation.send("plain", "y", sequence=5)
    assert not numbered.duplicate
    unnumbered = conversation.send("plain", "z", sequence=0)
    assert not unnumbered.duplicate and unnumbered.delta == "z"
    info = read(stub, "plain")
    assert (info.text, info.last_sequence) == ("xxyz", 5)

    # After a numbered final, sequence 0 starts the id afresh instead of being a duplicate.
    conversation.send("plain", "", sequence=6, final=True)
    assert conversation.send("plain", "", sequence=6).duplicate
    restarted = conversation.send("plain", "new", mode=APPEND, sequence=0)
    assert not restarted.duplicate and restarted.delta == "new"
    assert read(stub, "plain").text == "new"
    conversation.close()


def test_a_restart_loses_every_id(server_process) -> None:
    server = server_process("--grace-period", "5")
    port = server.port
    with grpc.insecure_channel(server.address, options=CLIENT_OPTIONS) as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        conversation = Conversation(stub)
        for number in (1, 2, 3):
            conversation.send_raw(request("doc", APPEND, number, first=number == 1))
        conversation.close()
        assert read(stub, "doc").text == "".join(PIECES[:3])
    server.terminate()
    status, _, stderr = server.wait()
    assert status == 0, stderr

    restarted = server_process("--port", str(port), "--grace-period", "5")
    assert restarted.port == port
    with grpc.insecure_channel(restarted.address, options=CLIENT_OPTIONS) as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            read(stub, "doc")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        # The sequence was lost with the text: a resend is applied to a new, empty id.
        conversation = Conversation(stub)
        again = conversation.send_raw(request("doc", APPEND, 3, first=True))
        assert not again.duplicate and again.delta == PIECES[2]
        conversation.close()
        assert read(stub, "doc").text == PIECES[2]
