"""How big a chunk must be before the server processes it on a worker thread.

Engine work is CPU-bound. Run on the event loop, a big chunk stalls every other stream for
as long as it takes; run on a thread, every chunk pays for the hop. This measures both sides:

1. engine time per chunk, by size and kind of content (what a chunk inline costs the loop);
2. small-chunk throughput of one stream, always offloaded vs inline (what a hop costs);
3. round trips of a small stream while another stream sends big chunks, by threshold.

The server runs in a child process, as in production, so the client's Python does not share
its GIL. Run: ``.venv/bin/python -m bench.loop_latency`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import queue
import statistics
import sys
import threading
import time
from collections.abc import Iterator

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc

from server.app import SWITCH_INTERVAL, create_server
from server.config import Config
from server.servicer import OFFLOAD_CHARS
from server.streams import Streams

KiB = 1024
MiB = 1024 * KiB
NEVER = 1 << 62
APPEND = pb.DELTA_MODE_APPEND
TIMEOUT = 600.0


def content(kind: str, size: int) -> tuple[str, str, str]:
    """(processor, opening chunk, chunk of `size` characters) for a kind of content."""
    if kind == "text":
        return "text", "", "y" * size
    if kind == "json-string":
        return "json", '["', "y" * size
    if kind == "json-dense":
        # Short strings, one per array element: the most work per character for the reader.
        return "json", "[", ('"ab",' * (size // 5 + 1))[:size]
    raise ValueError(kind)


def engine_cost(kind: str, size: int, repeats: int = 3) -> float:
    """Best-of seconds for one chunk of `size` characters, called directly."""
    parser = Streams()
    processor, opening, chunk = content(kind, size)
    best = float("inf")
    for n in range(repeats):
        chunk_id = f"{kind}-{n}"
        parser.process(chunk_id, opening, processor_type=processor, mode=APPEND)
        started = time.perf_counter()
        parser.process(chunk_id, chunk)
        best = min(best, time.perf_counter() - started)
        parser.clear(chunk_id)
    return best


def _serve(offload_chars: int, switch_interval: float, ports: multiprocessing.Queue) -> None:
    sys.setswitchinterval(switch_interval)

    async def serve() -> None:
        server, port = await create_server(Config(port=0), offload_chars=offload_chars)
        await server.start()
        ports.put(port)
        await server.wait_for_termination()

    asyncio.run(serve())


class ServerProcess:
    def __init__(self, offload_chars: int, switch_interval: float) -> None:
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        self.process = context.Process(
            target=_serve, args=(offload_chars, switch_interval, ports), daemon=True
        )
        self.process.start()
        self.address = f"127.0.0.1:{ports.get(timeout=60)}"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.join(10)


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", -1)])


def small_chunk_throughput(address: str, count: int) -> float:
    """Requests per second of one pipelined stream of 16-character chunks."""

    def requests() -> Iterator[pb.ProcessChunksRequest]:
        for n in range(count):
            yield pb.ProcessChunksRequest(chunk_id=f"small-{n % 10}", chunk="0123456789abcdef")

    with channel(address) as ch:
        stub = pb_grpc.StreamingParserStub(ch)
        started = time.perf_counter()
        answered = sum(1 for _ in stub.ProcessChunks(requests(), timeout=TIMEOUT))
        elapsed = time.perf_counter() - started
    assert answered == count
    return count / elapsed


class Lockstep:
    """A stream that sends one request and waits for its response."""

    def __init__(self, stub: pb_grpc.StreamingParserStub) -> None:
        self._requests: queue.Queue[pb.ProcessChunksRequest | None] = queue.Queue()
        self._responses = stub.ProcessChunks(iter(self._requests.get, None), timeout=TIMEOUT)

    def send(self, **fields: object) -> pb.ProcessChunksResponse:
        self._requests.put(pb.ProcessChunksRequest(**fields))
        return next(self._responses)

    def close(self) -> None:
        self._requests.put(None)
        for _ in self._responses:
            pass


def round_trips_under_load(address: str, kind: str, size: int, probes: int) -> list[float]:
    """Round trips of 1-character chunks while another stream sends `size`-character chunks."""
    processor, opening, chunk = content(kind, size)
    stop = threading.Event()
    loaded = threading.Event()

    def load() -> None:
        with channel(address) as ch:
            stub = pb_grpc.StreamingParserStub(ch)
            heavy = Lockstep(stub)
            number = 0
            while not stop.is_set():
                chunk_id = f"heavy-{number}"
                heavy.send(chunk_id=chunk_id, chunk=opening, processor_type=processor, mode=APPEND)
                loaded.set()
                heavy.send(chunk_id=chunk_id, chunk=chunk)
                stub.ClearChunk(pb.ClearChunkRequest(chunk_id=chunk_id), timeout=TIMEOUT)
                number += 1
            heavy.close()

    thread = threading.Thread(target=load)
    thread.start()
    times = []
    try:
        loaded.wait(TIMEOUT)
        with channel(address) as ch:
            probe = Lockstep(pb_grpc.StreamingParserStub(ch))
            probe.send(chunk_id="probe", chunk="", mode=APPEND)
            for _ in range(probes):
                started = time.perf_counter()
                probe.send(chunk_id="probe", chunk="x")
                times.append(time.perf_counter() - started)
                # Spread the probes over several big chunks.
                time.sleep(0.005)
            probe.close()
    finally:
        stop.set()
        thread.join(TIMEOUT)
    return times


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--small", type=int, default=20_000, help="requests in the throughput run")
    parser.add_argument(
        "--thresholds",
        type=lambda text: [NEVER if t == "never" else int(t) for t in text.split(",")],
        default=[NEVER, 64 * KiB, OFFLOAD_CHARS],
        help="offload thresholds to compare, in characters, or 'never'",
    )
    parser.add_argument(
        "--switch-intervals",
        type=lambda text: [float(t) for t in text.split(",")],
        default=[SWITCH_INTERVAL],
        help="the server's sys.setswitchinterval values to compare (default: what serve() sets)",
    )
    args = parser.parse_args()
    thresholds = list(dict.fromkeys(args.thresholds))

    print("1. engine time per chunk, ms (called directly)")
    print(f"{'size':>10} {'text':>8} {'json-string':>12} {'json-dense':>11}")
    for size in (16, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, MiB):
        repeats = 1 if size >= 256 * KiB else 3
        costs = [engine_cost(kind, size, repeats) for kind in ("text", "json-string", "json-dense")]
        print(f"{size:>10} {_ms(costs[0])} {_ms(costs[1]):>12} {_ms(costs[2]):>11}")

    interval = args.switch_intervals[0]
    print("\n2. one stream of 16-character chunks, requests/s")
    for label, threshold in (("every chunk on a thread", 0), ("every chunk inline", NEVER)):
        with ServerProcess(threshold, interval) as server:
            rate = small_chunk_throughput(server.address, args.small)
        print(f"   {label:<26} {rate:10.0f}")

    print("\n3. round trip of a 1-character chunk while another stream sends big ones, ms")
    print(f"   {'load':<22} {'threshold':>10} {'switch':>7} {'p50':>8} {'p99':>8} {'max':>8}")
    loads = (
        ("json-string", MiB - 16),
        ("json-dense", 64 * KiB),
        ("json-dense", 4 * KiB),
        ("json-dense", KiB),
    )
    for kind, size in loads:
        for threshold in thresholds:
            for interval in args.switch_intervals:
                with ServerProcess(threshold, interval) as server:
                    times = sorted(round_trips_under_load(server.address, kind, size, args.probes))
                label = "never" if threshold == NEVER else str(threshold)
                p99 = times[max(0, int(len(times) * 0.99) - 1)]
                print(
                    f"   {kind + ' ' + str(size):<22} {label:>10} {interval * 1e3:5.1f}ms "
                    f"{_ms(statistics.median(times))} {_ms(p99)} {_ms(times[-1])}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
