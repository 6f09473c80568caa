"""A flood of distinct ids, as fast as one client can send them, against `python -m server
--max-ids 10000`.

Invariant: the server's memory is bounded by the id limit, not by how many ids it has
seen. With the table full of live ids, a new id is refused with RESOURCE_EXHAUSTED and the
live ids are kept; with finished ids whose sequences are remembered, the earliest are
dropped to make room, so a flood of any length is served and the resident set stops
growing once the table has turned over.

`CHUNKWISE_FLOOD_IDS` sets the flood's length (60,000 by default, which one client sends in
about half a minute on 2 cores; `make soak` sends 1,000,000). The RSS figures printed (run
with `-s`) are recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import ServerProcess
from soak_load import CALL_TIMEOUT, open_channels, rss_kib

FLOOD_IDS = int(os.environ.get("CHUNKWISE_FLOOD_IDS", "60000"))
MAX_IDS = 10_000
#: Streams sending at once, each pipelined: the server answers each stream in order, so
#: several keep both of its threads and the worker pool busy.
STREAMS = 4
#: Growth allowed once the table has turned over twice. A server remembering every flooded
#: id grew by about 0.7 MiB per 1,000 ids: 28 MiB over the 40,000 sent after that point.
RSS_GROWTH_MIB = 10
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


def chunk_of(number: int) -> str:
    return f"flood document {number:09d}"


async def pipelined(
    stub: pb_grpc.StreamingParserStub,
    requests: Iterator[pb.ProcessChunksRequest],
    check: Callable[[pb.ProcessChunksRequest, pb.ProcessChunksResponse], None],
) -> int:
    """Send every request on one stream without waiting for answers; check each answer
    against its request, in order. Returns how many were answered."""
    call = stub.ProcessChunks(timeout=CALL_TIMEOUT * 10)
    sent: asyncio.Queue[pb.ProcessChunksRequest | None] = asyncio.Queue(maxsize=1000)

    async def write() -> None:
        for request in requests:
            await sent.put(request)
            await call.write(request)
        await sent.put(None)
        await call.done_writing()

    writer = asyncio.create_task(write())
    answered = 0
    while (request := await sent.get()) is not None:
        check(request, await call.read())
        answered += 1
    await writer
    assert await call.read() is grpc.aio.EOF
    return answered


async def in_parallel(
    stub: pb_grpc.StreamingParserStub,
    numbers: range,
    make: Callable[[int], pb.ProcessChunksRequest],
    check: Callable[[pb.ProcessChunksRequest, pb.ProcessChunksResponse], None],
) -> int:
    """`numbers` spread over STREAMS pipelined streams."""
    shares = [numbers[s::STREAMS] for s in range(STREAMS)]
    counts = await asyncio.gather(
        *(pipelined(stub, (make(n) for n in share), check) for share in shares)
    )
    return sum(counts)


def accepted(request: pb.ProcessChunksRequest, response: pb.ProcessChunksResponse) -> None:
    assert (response.chunk_id, response.sequence) == (request.chunk_id, request.sequence)
    assert not response.HasField("error"), response.error
    assert not response.duplicate
    assert response.delta == request.chunk
    if request.final:
        # Every id here holds the one chunk named by its number.
        number = int(request.chunk_id.rpartition("-")[2])
        assert response.final and response.complete_text == chunk_of(number)


def refused(request: pb.ProcessChunksRequest, response: pb.ProcessChunksResponse) -> None:
    assert response.chunk_id == request.chunk_id
    assert response.error.code == EXHAUSTED, response
    assert response.delta == ""


def live(number: int) -> pb.ProcessChunksRequest:
    return pb.ProcessChunksRequest(
        chunk_id=f"live-{number}", chunk=chunk_of(number), mode=pb.DELTA_MODE_APPEND
    )


def finishing(number: int) -> pb.ProcessChunksRequest:
    """Ends a live id; with no sequence, nothing of it is remembered."""
    return pb.ProcessChunksRequest(chunk_id=f"live-{number}", chunk="", final=True)


def flooded(number: int) -> pb.ProcessChunksRequest:
    """One whole document per id, numbered, so its sequence is remembered once finished."""
    return pb.ProcessChunksRequest(
        chunk_id=f"flood-{number}",
        chunk=chunk_of(number),
        mode=pb.DELTA_MODE_APPEND,
        final=True,
        sequence=1,
    )


async def flood(server: ServerProcess) -> dict[str, float]:
    pid = server.process.pid
    [channel] = open_channels(server.address, 1)
    stub = pb_grpc.StreamingParserStub(channel)
    figures: dict[str, float] = {"start_rss_mib": rss_kib(pid) / 1024}

    # A table full of live ids refuses new ones and keeps every live one.
    assert await in_parallel(stub, range(MAX_IDS), live, accepted) == MAX_IDS
    assert await in_parallel(stub, range(MAX_IDS, MAX_IDS + 1000), live, refused) == 1000
    info = await stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="live-0"))
    assert info.text == chunk_of(0)
    assert await in_parallel(stub, range(MAX_IDS), finishing, accepted) == MAX_IDS
    figures["full_table_rss_mib"] = rss_kib(pid) / 1024

    # The flood: every id finished with a remembered sequence.
    samples: list[tuple[int, int]] = []  # (ids sent, RSS in KiB)
    done = 0

    def sampled(request: pb.ProcessChunksRequest, response: pb.ProcessChunksResponse) -> None:
        nonlocal done
        accepted(request, response)
        done += 1
        if done % 5000 == 0:
            samples.append((done, rss_kib(pid)))

    started = time.monotonic()
    assert await in_parallel(stub, range(FLOOD_IDS), flooded, sampled) == FLOOD_IDS
    elapsed = time.monotonic() - started
    samples.append((FLOOD_IDS, rss_kib(pid)))

    # The earliest finished ids were dropped for later ones; the latest are remembered.
    [latest] = [r async for r in stub.ProcessChunks(iter([flooded(FLOOD_IDS - 1)]))]
    assert latest.duplicate and latest.complete_text == chunk_of(FLOOD_IDS - 1)
    [earliest] = [r async for r in stub.ProcessChunks(iter([flooded(0)]))]
    assert not earliest.duplicate and earliest.complete_text == chunk_of(0)
    await channel.close()

    turned_over = [rss for count, rss in samples if count >= 2 * MAX_IDS]
    figures.update(
        ids_per_s=FLOOD_IDS / elapsed,
        turned_over_rss_mib=turned_over[0] / 1024,
        peak_rss_mib=max(rss for _, rss in samples) / 1024,
        end_rss_mib=samples[-1][1] / 1024,
    )
    return {name: round(value, 1) for name, value in figures.items()}


@pytest.mark.timeout(max(300, FLOOD_IDS // 500))
def test_a_flood_of_ids_is_bounded_by_the_id_limit(server_process, record_property) -> None:
    server = server_process("--max-ids", str(MAX_IDS))
    figures = asyncio.run(flood(server))
    print(f"\nflood of {FLOOD_IDS} ids: {json.dumps(figures)}")
    for name, value in figures.items():
        record_property(name, value)
    assert figures["peak_rss_mib"] - figures["turned_over_rss_mib"] < RSS_GROWTH_MIB, figures
    server.terminate()
    status, _, stderr = server.wait()
    assert status == 0, stderr
