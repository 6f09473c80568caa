"""The event loop never waits for an id.

A worker thread can hold an id's lock for as long as a megabyte chunk takes. Whatever
needs that id meanwhile (a small chunk, GetCompleteText) must wait on a worker, never on
the event loop: other streams keep their latency. Here the id's lock is held by the test
itself, as long as it likes, so the check does not depend on timing: with the loop
waiting, the unrelated stream would get no answer at all until the lock is let go.
"""

from __future__ import annotations

import queue
import threading
import time

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT, Conversation

APPEND = pb.DELTA_MODE_APPEND


def held_lock(server, chunk_id: str) -> threading.Lock:
    state = server.streams.store.live(("", chunk_id))
    assert state is not None
    return state.lock


def test_a_small_chunk_for_a_busy_id_does_not_hold_up_other_streams(server_factory) -> None:
    server = server_factory()
    with server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        requests: queue.Queue[pb.ProcessChunksRequest | None] = queue.Queue()
        busy = stub.ProcessChunks(iter(requests.get, None), timeout=TIMEOUT)
        other = Conversation(stub)
        requests.put(pb.ProcessChunksRequest(chunk_id="busy", chunk="a", mode=APPEND))
        assert next(busy).delta == "a"
        lock = held_lock(server, "busy")
        lock.acquire()
        try:
            requests.put(pb.ProcessChunksRequest(chunk_id="busy", chunk="b"))
            time.sleep(0.2)  # long enough for the server to have read it
            for n in range(20):
                assert other.send("other", str(n), mode=APPEND).delta == str(n)
            assert stub.ClearChunk(pb.ClearChunkRequest(chunk_id="other"), timeout=TIMEOUT).cleared
        finally:
            lock.release()
        # Only now can the busy id's chunk be applied, after the others were all answered.
        response = next(busy)
        assert response.delta == "b" and not response.HasField("error")
        requests.put(None)
        assert list(busy) == []
        other.close()


def test_get_complete_text_of_a_busy_id_waits_on_a_worker(server_factory) -> None:
    server = server_factory()
    with server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        talk = Conversation(stub)
        talk.send("busy", "held text", mode=APPEND)
        lock = held_lock(server, "busy")
        lock.acquire()
        try:
            pending = stub.GetCompleteText.future(
                pb.GetCompleteTextRequest(chunk_id="busy"), timeout=TIMEOUT
            )
            time.sleep(0.2)
            assert not pending.done()
            # Meanwhile the loop answers everything else.
            assert talk.send("free", "y", mode=APPEND).delta == "y"
            processors = stub.ListProcessors(pb.ListProcessorsRequest(), timeout=TIMEOUT)
            assert processors.processors
        finally:
            lock.release()
        assert pending.result().text == "held text"
        talk.close()


def test_unary_calls_still_map_engine_errors_to_statuses(server_factory) -> None:
    server = server_factory()
    with server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        try:
            stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="nothing"), timeout=TIMEOUT)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
        else:
            raise AssertionError("an untracked id was found")
