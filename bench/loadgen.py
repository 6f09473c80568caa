"""The load generator: many ProcessChunks streams over a few channels, in its own process.

    python -m bench.loadgen --target HOST:PORT --kind closed --streams 100 --channels 8 ...

prints one JSON object on stdout. Two kinds of load:
- closed: each stream keeps `window` requests in flight and sends the next as soon as a
  response comes back; the figure is responses per second once warm. It saturates
  something (the server or this process), so it measures capacity, not latency.
- open: each stream sends `rate` requests per second at fixed times, whatever comes back;
  a response's latency counts from the time its request was due, so a queue anywhere
  (client, wire, server) shows as latency instead of slowing the senders down.

Each stream tracks its own chunk ids in APPEND mode, numbered by sequence, and moves to a
fresh id when its document runs out (so `json` ids always hold valid JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import random
import resource
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from chunkwise.v1 import streaming_pb2, streaming_pb2_grpc

from server.event_loop import EVENT_LOOPS
from server.event_loop import run as run_on_loop

from . import workloads

APPEND = streaming_pb2.DELTA_MODE_APPEND
DOC_BYTES = 32 * 1024

# The document each processor is fed: prose for `text`, a generic document for `json`.
DOC_FOR = {"text": "plan", "json": "nested"}


@dataclass
class Tally:
    responses: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sent: int = 0


def _doc_chunks(processor: str, chunk_bytes: int) -> list[str]:
    return workloads.chunks(workloads.make(DOC_FOR[processor], DOC_BYTES), chunk_bytes)


def _requests_for(
    tag: str, stream: int, processor: str, chunks: list[str]
) -> collections.abc.Iterator[streaming_pb2.ProcessChunksRequest]:
    """Endless requests for one stream: its document, chunk by chunk, id after id."""
    generation = 0
    while True:
        chunk_id = f"{tag}-{stream}-{generation}"
        for sequence, chunk in enumerate(chunks, start=1):
            yield streaming_pb2.ProcessChunksRequest(
                chunk_id=chunk_id,
                chunk=chunk,
                processor_type=processor,
                mode=APPEND,
                sequence=sequence,
            )
        generation += 1


def _check(response: streaming_pb2.ProcessChunksResponse, tally: Tally) -> None:
    if response.HasField("error"):
        tally.errors += 1
        if len(tally.error_samples) < 3:
            tally.error_samples.append(f"{response.error.code}: {response.error.message}")


async def _closed_stream(
    stub: streaming_pb2_grpc.StreamingParserStub,
    requests: collections.abc.Iterator[streaming_pb2.ProcessChunksRequest],
    window: int,
    stop: asyncio.Event,
    tally: Tally,
) -> None:
    credit = asyncio.Semaphore(window)

    async def send() -> AsyncIterator[streaming_pb2.ProcessChunksRequest]:
        while not stop.is_set():
            await credit.acquire()
            tally.sent += 1
            yield next(requests)

    async for response in stub.ProcessChunks(send()):
        _check(response, tally)
        tally.responses += 1
        credit.release()


async def _open_stream(
    stub: streaming_pb2_grpc.StreamingParserStub,
    requests: collections.abc.Iterator[streaming_pb2.ProcessChunksRequest],
    rate: float,
    start: float,
    window: tuple[float, float],
    end: float,
    tally: Tally,
    rng: random.Random,
) -> None:
    due_times: collections.deque[float] = collections.deque()
    loop = asyncio.get_running_loop()
    phase = rng.random() / rate  # spreads the streams' send times over the period

    async def send() -> AsyncIterator[streaming_pb2.ProcessChunksRequest]:
        k = 0
        while True:
            due = start + phase + k / rate
            if due >= end:
                return
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            due_times.append(due)
            tally.sent += 1
            yield next(requests)
            k += 1

    async for response in stub.ProcessChunks(send()):
        now = loop.time()
        due = due_times.popleft()
        _check(response, tally)
        tally.responses += 1
        if window[0] <= due < window[1]:
            tally.latencies.append(now - due)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _channels(target: str, count: int) -> list[grpc.aio.Channel]:
    # A local subchannel pool gives each channel its own connection; by default channels
    # to one target with the same options share one.
    options = [("grpc.use_local_subchannel_pool", 1)]
    return [grpc.aio.insecure_channel(target, options=options) for _ in range(count)]


async def _connect(
    args: argparse.Namespace,
) -> tuple[list[grpc.aio.Channel], list[streaming_pb2_grpc.StreamingParserStub]]:
    """The run's channels, each ready, and a stub on each."""
    channels = _channels(args.target, args.channels)
    for channel in channels:
        await asyncio.wait_for(channel.channel_ready(), 10)
    return channels, [streaming_pb2_grpc.StreamingParserStub(ch) for ch in channels]


async def run_closed(args: argparse.Namespace) -> dict:
    channels, stubs = await _connect(args)
    chunks = _doc_chunks(args.processor, args.chunk_bytes)
    tally = Tally()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            _closed_stream(
                stubs[i % len(stubs)],
                _requests_for(args.tag, i, args.processor, chunks),
                args.window,
                stop,
                tally,
            )
        )
        for i in range(args.streams)
    ]
    await asyncio.sleep(args.warmup)
    first_count, first_time = tally.responses, time.perf_counter()
    await asyncio.sleep(args.duration)
    last_count, last_time = tally.responses, time.perf_counter()
    stop.set()
    # Each stream's sender may be parked on its window; the responses in flight free it.
    await asyncio.wait_for(asyncio.gather(*tasks), args.drain_timeout)
    for channel in channels:
        await channel.close()
    return {
        "msgs_per_s": (last_count - first_count) / (last_time - first_time),
        "measured_responses": last_count - first_count,
        "responses": tally.responses,
        "sent": tally.sent,
        "errors": tally.errors,
        "error_samples": tally.error_samples,
    }


async def run_open(args: argparse.Namespace) -> dict:
    channels, stubs = await _connect(args)
    chunks = _doc_chunks(args.processor, args.chunk_bytes)
    tally = Tally()
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5  # time to open every stream before the first send is due
    window = (start + args.warmup, start + args.warmup + args.duration)
    tasks = [
        asyncio.create_task(
            _open_stream(
                stubs[i % len(stubs)],
                _requests_for(args.tag, i, args.processor, chunks),
                args.rate,
                start,
                window,
                window[1],
                tally,
                rng,
            )
        )
        for i in range(args.streams)
    ]
    await asyncio.wait_for(
        asyncio.gather(*tasks), args.warmup + args.duration + 0.5 + args.drain_timeout
    )
    for channel in channels:
        await channel.close()
    latencies = sorted(tally.latencies)
    return {
        "offered_msgs_per_s": args.streams * args.rate,
        "measured": len(latencies),
        "p50_ms": _percentile(latencies, 0.50) * 1e3,
        "p90_ms": _percentile(latencies, 0.90) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "p999_ms": _percentile(latencies, 0.999) * 1e3,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1e3,
        "responses": tally.responses,
        "sent": tally.sent,
        "errors": tally.errors,
        "error_samples": tally.error_samples,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--target", required=True, help="HOST:PORT")
    parser.add_argument("--kind", choices=("closed", "open"), required=True)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--window", type=int, default=8, help="closed: requests in flight")
    parser.add_argument("--rate", type=float, default=3.0, help="open: requests/s per stream")
    parser.add_argument("--processor", choices=tuple(DOC_FOR), default="text")
    parser.add_argument("--chunk-bytes", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--tag", default="load", help="chunk id prefix, unique per run")
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default="auto")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict:
    # A collection here pauses every stream at once, and the pause would be counted as the
    # server's latency: the run's few cycles can wait until it ends.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        result = await (run_closed(args) if args.kind == "closed" else run_open(args))
    finally:
        gc.enable()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    result["client_peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_on_loop(lambda: run(args), args.event_loop)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
