"""Streams over gRPC: interleaving, concurrency, shared state, wire limits, expiry, latency."""

from __future__ import annotations

import statistics
import threading
import time

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT, Conversation, InProcessServer

APPEND = pb.DELTA_MODE_APPEND
MiB = 1 << 20
#: 64 KiB of JSON that keeps the reader busy: short strings, one per element.
HEAVY_CHUNK = "[" + '"ab",' * (64 * 1024 // 5)


def text_of(stub: pb_grpc.StreamingParserStub, chunk_id: str) -> str:
    return stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id=chunk_id), timeout=TIMEOUT).text


def test_many_ids_interleaved_on_one_stream(stub: pb_grpc.StreamingParserStub) -> None:
    ids = [f"id-{n}" for n in range(20)]
    requests = [
        pb.ProcessChunksRequest(
            chunk_id=chunk_id,
            chunk=f"<{chunk_id}:{step}>",
            mode=APPEND,
            sequence=step + 1,
            final=step == 9,
        )
        for step in range(10)
        for chunk_id in ids
    ]
    # All requests are written at once: the server must still answer one by one, in order.
    responses = list(stub.ProcessChunks(iter(requests), timeout=TIMEOUT))
    assert [(r.chunk_id, r.sequence, r.delta) for r in responses] == [
        (q.chunk_id, q.sequence, q.chunk) for q in requests
    ]
    finals = {r.chunk_id: r.complete_text for r in responses if r.final}
    assert finals == {
        chunk_id: "".join(f"<{chunk_id}:{step}>" for step in range(10)) for chunk_id in ids
    }


def test_two_streams_write_different_ids_at_once(grpc_server: InProcessServer) -> None:
    results: dict[str, list[pb.ProcessChunksResponse]] = {}
    start = threading.Barrier(2)

    def write(chunk_id: str) -> None:
        with grpc_server.channel() as channel:
            stub = pb_grpc.StreamingParserStub(channel)
            start.wait(TIMEOUT)
            requests = (
                pb.ProcessChunksRequest(chunk_id=chunk_id, chunk=f"{n},", mode=APPEND)
                for n in range(300)
            )
            results[chunk_id] = list(stub.ProcessChunks(requests, timeout=TIMEOUT))

    threads = [threading.Thread(target=write, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    expected = "".join(f"{n}," for n in range(300))
    with grpc_server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        for chunk_id in ("left", "right"):
            assert [r.chunk_id for r in results[chunk_id]] == [chunk_id] * 300
            assert "".join(r.delta for r in results[chunk_id]) == expected
            assert text_of(stub, chunk_id) == expected


def test_another_connection_sees_the_text_during_and_after_the_stream(
    grpc_server: InProcessServer, stub: pb_grpc.StreamingParserStub
) -> None:
    with grpc_server.channel() as reader_channel:
        reader = pb_grpc.StreamingParserStub(reader_channel)
        conversation = Conversation(stub)
        conversation.send("shared", "first ", mode=APPEND, sequence=1)
        info = reader.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="shared"), timeout=TIMEOUT)
        assert (info.text, info.last_sequence, info.processor_type) == ("first ", 1, "text")
        conversation.send("shared", "second", sequence=2)
        assert text_of(reader, "shared") == "first second"
        conversation.close()
        # The state outlives the stream that wrote it.
        assert text_of(reader, "shared") == "first second"


def test_a_final_response_past_4_mib_arrives(stub: pb_grpc.StreamingParserStub) -> None:
    conversation = Conversation(stub)
    for n in range(5):
        conversation.send("large", chr(ord("a") + n) * MiB, mode=APPEND)
    final = conversation.send("large", "!", final=True)
    assert len(final.complete_text) == 5 * MiB + 1
    assert final.complete_text.startswith("a" * MiB) and final.complete_text.endswith("e!")
    conversation.close()


def test_a_5_mib_message_fails_its_stream_and_the_server_carries_on(
    stub: pb_grpc.StreamingParserStub,
) -> None:
    bystander = Conversation(stub)
    assert bystander.send("calm", "before", mode=APPEND).delta == "before"
    oversized = Conversation(stub)
    oversized.send("huge", "fine")
    with pytest.raises(grpc.RpcError) as error:
        oversized.send("huge", "x" * (5 * MiB))
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert bystander.send("calm", " after").delta == " after"
    assert text_of(stub, "calm") == "before after"
    assert text_of(stub, "huge") == "fine"
    bystander.close()
    fresh = Conversation(stub)
    assert fresh.send("new", "still serving").delta == "still serving"
    fresh.close()


def test_the_message_limit_is_a_flag(server_factory) -> None:
    server = server_factory(max_message_bytes=1000)
    with server.channel() as channel:
        conversation = Conversation(pb_grpc.StreamingParserStub(channel))
        assert conversation.send("a", "x" * 900).delta == "x" * 900
        with pytest.raises(grpc.RpcError) as error:
            conversation.send("a", "x" * 1100)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_an_idle_id_is_forgotten_and_reads_do_not_keep_it(server_factory) -> None:
    server = server_factory(idle_ttl=1)
    with server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        conversation = Conversation(stub)
        conversation.send("idle", "text")
        written = time.monotonic()
        deadline = written + 15
        while time.monotonic() < deadline:
            try:
                text_of(stub, "idle")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
                break
            time.sleep(0.05)
        else:
            pytest.fail("the idle id was never forgotten")
        assert time.monotonic() - written >= 1
        conversation.close()


def round_trip_times(stub: pb_grpc.StreamingParserStub, count: int) -> list[float]:
    conversation = Conversation(stub)
    conversation.send("probe", "", mode=APPEND)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        conversation.send("probe", "x")
        times.append(time.perf_counter() - started)
        # Spreads the probes over several big chunks.
        time.sleep(0.005)
    conversation.close()
    return times


def test_big_chunks_on_one_stream_do_not_stall_another(grpc_server: InProcessServer) -> None:
    """While one stream sends big JSON chunks, a small round trip stays quick."""
    stop = threading.Event()
    heavy_started = threading.Event()

    def heavy() -> None:
        with grpc_server.channel() as channel:
            stub = pb_grpc.StreamingParserStub(channel)
            conversation = Conversation(stub)
            number = 0
            while not stop.is_set():
                heavy_started.set()
                # A fresh id each time keeps the text below its limit.
                chunk_id = f"heavy-{number}"
                conversation.send(chunk_id, HEAVY_CHUNK, processor_type="json", mode=APPEND)
                stub.ClearChunk(pb.ClearChunkRequest(chunk_id=chunk_id), timeout=TIMEOUT)
                number += 1
            conversation.close()

    thread = threading.Thread(target=heavy)
    thread.start()
    try:
        assert heavy_started.wait(TIMEOUT)
        with grpc_server.channel() as channel:
            times = round_trip_times(pb_grpc.StreamingParserStub(channel), 100)
    finally:
        stop.set()
        thread.join(TIMEOUT)
    # Generous for a busy 2-core machine; with big chunks processed on the event loop a
    # round trip waits for a whole chunk, a quarter of a second or more.
    assert statistics.median(times) < 0.1, times
