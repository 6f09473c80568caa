"""The loop-stall bench: does a stream sending megabyte chunks stall the others?

The contract says one stream's megabyte chunks must not stall unrelated streams. A probe
stream sends 16-byte chunks on an id of its own, one at a time, each waiting for its
response, and records the round trips:

1. idle: the probe alone;
2. loaded: the same probe while other streams send 1 MiB chunks of dense JSON (short
   strings in an array, the most engine time per byte) under the `json` processor,
   several streams sharing each id so that their chunks queue on it, and readers call
   GetCompleteText on those ids in a loop.

The figure is loaded p99 / idle p99 (goal ≤ 2). Anything on the server that makes an
unrelated request wait for an id's megabyte chunk (a lock taken on the event loop, a
worker pool full of blocked threads) shows up as loaded round trips of seconds.

The server is `python -m server` in a child process and the load comes from another,
each on a CPU of its own where there are two, as in the service bench:

    python -m bench stall                  # about a minute
    python -m bench.loop_stall --target HOST:PORT ...   # the load generator alone; prints JSON
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc

from server.event_loop import EVENT_LOOPS
from server.event_loop import run as run_on_loop

from . import service_bench

KiB = 1 << 10
MiB = 1 << 20
GOAL = 2.0
APPEND = pb.DELTA_MODE_APPEND
PROBE_CHUNK = "0123456789abcdef"
# The server's default --max-text-bytes is 16 MiB; an id is replaced before it gets there.
TEXT_LIMIT = 16 * MiB
# Final responses and GetCompleteText of a full id pass gRPC's default 4 MiB.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * MiB),
    # Each channel its own connection: the probe does not queue behind megabyte frames.
    ("grpc.use_local_subchannel_pool", 1),
]
RPC_TIMEOUT = 120.0


@dataclass(frozen=True)
class StallConfig:
    idle: float = 10.0  # seconds of probing with nothing else running
    warmup: float = 5.0  # seconds of load before the loaded probing starts
    loaded: float = 30.0  # seconds of probing under load
    heavy_streams: int = 6
    heavy_ids: int = 2  # the heavy streams share these, round robin
    readers: int = 2  # GetCompleteText loops, round robin over the shared ids
    heavy_channels: int = 2
    chunk_bytes: int = MiB
    id_bytes: int = 8 * MiB  # an id is replaced once its text would pass this
    probe_interval: float = 0.002  # pause between one probe's response and the next send
    reader_interval: float = 0.01  # pause between one reader's calls
    event_loop: str = "auto"  # of the server and the load generator


FULL = StallConfig()
QUICK = StallConfig(idle=3.0, warmup=3.0, loaded=8.0)


def dense_json(size: int) -> str:
    """`size` bytes that continue a JSON array of short strings, any number of times over."""
    element = '"ab",'
    count, rest = divmod(size, len(element))
    return element * count + " " * rest


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile (0 < q <= 1) of sorted values."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def summarize(round_trips: list[float]) -> dict:
    ordered = sorted(round_trips)
    return {
        "probes": len(ordered),
        "p50_ms": percentile(ordered, 0.5) * 1e3,
        "p90_ms": percentile(ordered, 0.9) * 1e3,
        "p99_ms": percentile(ordered, 0.99) * 1e3,
        "max_ms": (ordered[-1] if ordered else math.nan) * 1e3,
        "over_100ms": sum(1 for t in ordered if t > 0.1),
    }


# --- the load generator (a child process) ---------------------------------------------


class Lockstep:
    """One ProcessChunks stream: each request waits for its response."""

    def __init__(self, stub: pb_grpc.StreamingParserStub) -> None:
        self._call = stub.ProcessChunks(timeout=None)

    async def send(self, request: pb.ProcessChunksRequest) -> pb.ProcessChunksResponse:
        await self._call.write(request)
        response = await self._call.read()
        if response is grpc.aio.EOF:
            raise RuntimeError(f"the stream ended: {await self._call.code()}")
        return response

    def cancel(self) -> None:
        self._call.cancel()


@dataclass
class LoadTally:
    chunks: int = 0
    chunk_bytes: int = 0
    limited: int = 0  # RESOURCE_EXHAUSTED responses: limits, expected now and then
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    reads: int = 0
    read_bytes: int = 0
    reads_not_found: int = 0
    ids: int = 0
    cleared: int = 0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text)


class SharedId:
    """One of the ids the heavy streams share, replaced by a fresh one before it fills."""

    def __init__(self, name: str, config: argparse.Namespace, tally: LoadTally) -> None:
        self._name = name
        self._budget = min(config.id_bytes, TEXT_LIMIT)
        self._tally = tally
        self._generation = 0
        self._lock = asyncio.Lock()
        self._planned = 0
        self._in_flight: dict[str, int] = {}
        self._retired: set[str] = set()
        self._clears: set[asyncio.Task[None]] = set()
        self.current: str | None = None
        self.closing = False

    async def reserve(self, size: int, opener: Lockstep, stub: pb_grpc.StreamingParserStub) -> str:
        """The id to send `size` more bytes to, opened first when it is new."""
        async with self._lock:
            if self.current is None or self._planned + size > self._budget:
                if self.current is not None:
                    self._retire(self.current, stub)
                chunk_id = f"{self._name}-{self._generation}"
                self._generation += 1
                # The array is opened before any stream may send to the id, so the text
                # stays JSON whatever order the streams' chunks arrive in.
                opened = await opener.send(
                    pb.ProcessChunksRequest(
                        chunk_id=chunk_id, chunk="[", processor_type="json", mode=APPEND
                    )
                )
                if opened.HasField("error"):
                    self._tally.error(f"opening {chunk_id}: {opened.error.message}")
                self._tally.ids += 1
                self.current, self._planned = chunk_id, 1
            self._planned += size
            self._in_flight[self.current] = self._in_flight.get(self.current, 0) + 1
            return self.current

    def release(self, chunk_id: str, stub: pb_grpc.StreamingParserStub) -> None:
        self._in_flight[chunk_id] -= 1
        if chunk_id in self._retired:
            self._clear_if_idle(chunk_id, stub)

    def _retire(self, chunk_id: str, stub: pb_grpc.StreamingParserStub) -> None:
        self._retired.add(chunk_id)
        self._clear_if_idle(chunk_id, stub)

    def _clear_if_idle(self, chunk_id: str, stub: pb_grpc.StreamingParserStub) -> None:
        # Cleared only once no chunk is on its way to it, or that chunk would make a new
        # id that starts in the middle of an array.
        if self.closing or self._in_flight.get(chunk_id, 0):
            return
        self._retired.discard(chunk_id)
        self._in_flight.pop(chunk_id, None)
        task = asyncio.create_task(self._clear(chunk_id, stub))
        self._clears.add(task)
        task.add_done_callback(self._clears.discard)

    async def _clear(self, chunk_id: str, stub: pb_grpc.StreamingParserStub) -> None:
        try:
            await stub.ClearChunk(pb.ClearChunkRequest(chunk_id=chunk_id), timeout=RPC_TIMEOUT)
            self._tally.cleared += 1
        except grpc.aio.AioRpcError as error:
            self._tally.error(f"ClearChunk: {error.code().name} {error.details()}")


async def _heavy_stream(
    stub: pb_grpc.StreamingParserStub, shared: SharedId, chunk: str, tally: LoadTally
) -> None:
    stream = Lockstep(stub)
    try:
        while True:
            chunk_id = await shared.reserve(len(chunk), stream, stub)
            try:
                response = await stream.send(
                    pb.ProcessChunksRequest(chunk_id=chunk_id, chunk=chunk)
                )
            finally:
                shared.release(chunk_id, stub)
            tally.chunks += 1
            tally.chunk_bytes += len(chunk)
            if not response.HasField("error"):
                continue
            if response.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]:
                tally.limited += 1
            else:
                tally.error(f"{chunk_id}: {response.error.code} {response.error.message}")
    finally:
        stream.cancel()


async def _reader(
    stub: pb_grpc.StreamingParserStub, shared: SharedId, interval: float, tally: LoadTally
) -> None:
    while True:
        chunk_id = shared.current
        if chunk_id is not None:
            request = pb.GetCompleteTextRequest(chunk_id=chunk_id)
            try:
                response = await stub.GetCompleteText(request, timeout=RPC_TIMEOUT)
                tally.reads += 1
                tally.read_bytes += len(response.text)
            except grpc.aio.AioRpcError as error:
                # Between a replacement and the first chunk of the new id, or just cleared.
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    tally.reads_not_found += 1
                else:
                    tally.error(f"GetCompleteText: {error.code().name} {error.details()}")
        await asyncio.sleep(interval)


async def _probe(
    stub: pb_grpc.StreamingParserStub, tag: str, seconds: float, interval: float
) -> tuple[list[float], int]:
    """Round trips of 16-byte chunks on an id of the probe's own for `seconds`; and how
    many responses carried an error."""
    stream = Lockstep(stub)
    chunk_id = f"{tag}-probe"
    request = pb.ProcessChunksRequest(
        chunk_id=chunk_id, chunk=PROBE_CHUNK, processor_type="text", mode=APPEND
    )
    round_trips: list[float] = []
    errors = 0
    sent = 0
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            # 16 bytes a chunk: far from the text limit even at thousands a second.
            if sent * len(PROBE_CHUNK) >= TEXT_LIMIT // 2:
                await stub.ClearChunk(pb.ClearChunkRequest(chunk_id=chunk_id), timeout=RPC_TIMEOUT)
                sent = 0
            started = time.perf_counter()
            response = await stream.send(request)
            round_trips.append(time.perf_counter() - started)
            sent += 1
            errors += response.HasField("error")
            if interval:
                await asyncio.sleep(interval)
    finally:
        stream.cancel()
    await stub.ClearChunk(pb.ClearChunkRequest(chunk_id=chunk_id), timeout=RPC_TIMEOUT)
    return round_trips, errors


async def generate(args: argparse.Namespace) -> dict:
    """The two phases against the server at `args.target`; the figures as a dict."""
    probe_channel = grpc.aio.insecure_channel(args.target, options=CHANNEL_OPTIONS)
    heavy_channels = [
        grpc.aio.insecure_channel(args.target, options=CHANNEL_OPTIONS)
        for _ in range(args.heavy_channels)
    ]
    for channel in (probe_channel, *heavy_channels):
        await asyncio.wait_for(channel.channel_ready(), 10)
    probe_stub = pb_grpc.StreamingParserStub(probe_channel)
    stubs = [pb_grpc.StreamingParserStub(channel) for channel in heavy_channels]

    idle, idle_errors = await _probe(probe_stub, f"{args.tag}-idle", args.idle, args.probe_interval)

    tally = LoadTally()
    shared = [SharedId(f"{args.tag}-heavy-{i}", args, tally) for i in range(args.heavy_ids)]
    chunk = dense_json(args.chunk_bytes)
    tasks = [
        asyncio.create_task(
            _heavy_stream(stubs[i % len(stubs)], shared[i % len(shared)], chunk, tally)
        )
        for i in range(args.heavy_streams)
    ]
    tasks += [
        asyncio.create_task(
            _reader(stubs[i % len(stubs)], shared[i % len(shared)], args.reader_interval, tally)
        )
        for i in range(args.readers)
    ]
    try:
        await asyncio.sleep(args.warmup)
        before = dataclasses.replace(tally)
        started = time.perf_counter()
        loaded, loaded_errors = await _probe(
            probe_stub, f"{args.tag}-loaded", args.loaded, args.probe_interval
        )
        elapsed = time.perf_counter() - started
        during = dataclasses.replace(tally)
    finally:
        for one in shared:
            one.closing = True
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in results:
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            tally.error(f"{type(outcome).__name__}: {outcome}")
    for channel in (probe_channel, *heavy_channels):
        await channel.close()

    idle_summary = summarize(idle)
    loaded_summary = summarize(loaded)
    return {
        "idle": {**idle_summary, "errors": idle_errors},
        "loaded": {**loaded_summary, "errors": loaded_errors},
        "p99_ratio": loaded_summary["p99_ms"] / idle_summary["p99_ms"],
        "load": {
            **dataclasses.asdict(tally),
            "loaded_seconds": elapsed,
            "chunks_while_probed": during.chunks - before.chunks,
            "mib_per_s_while_probed": (during.chunk_bytes - before.chunk_bytes) / MiB / elapsed,
            "reads_while_probed": during.reads - before.reads,
        },
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loop_stall", description=__doc__)
    parser.add_argument("--target", help="HOST:PORT of a running server: only generate load")
    defaults = StallConfig()
    for name in (
        "idle",
        "warmup",
        "loaded",
        "heavy_streams",
        "heavy_ids",
        "readers",
        "heavy_channels",
        "chunk_bytes",
        "id_bytes",
        "probe_interval",
        "reader_interval",
    ):
        default = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default=defaults.event_loop)
    parser.add_argument("--tag", default="stall", help="prefix of every chunk id")
    return parser.parse_args(argv)


def _loadgen_command(address: str, config: StallConfig) -> list[str]:
    command = [sys.executable, "-m", "bench.loop_stall", "--target", address]
    for item in dataclasses.fields(config):
        command += [f"--{item.name.replace('_', '-')}", str(getattr(config, item.name))]
    return [*command, "--tag", f"stall-{uuid.uuid4().hex[:8]}"]


# --- the bench (the parent process) ---------------------------------------------------


def run(config: StallConfig) -> dict:
    """Start the server, run the load generator against it, and add the server's figures."""
    started = time.perf_counter()
    server = service_bench.chunkwise_server(config.event_loop)
    server.start()
    try:
        command = _loadgen_command(server.address, config)
        cpu_before = server.cpu_seconds()
        loadgen = subprocess.run(
            command,
            cwd=service_bench.REPO,
            stdout=subprocess.PIPE,
            text=True,
            timeout=config.idle + config.warmup + config.loaded + 120,
            preexec_fn=service_bench._on_cpu(service_bench.LOADGEN_CPU),
        )
        if loadgen.returncode != 0:
            raise RuntimeError(f"load generator failed ({loadgen.returncode}): {command}")
        result = json.loads(loadgen.stdout.strip().splitlines()[-1])
        result["server_cpu_s"] = server.cpu_seconds() - cpu_before
        result.update(server.memory())
    finally:
        server.stop()
    result["config"] = dataclasses.asdict(config)
    result["seconds"] = time.perf_counter() - started
    return result


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.1f}"


def render(stall: dict) -> str:
    """The bench's section of the report, in Markdown."""
    config, load = stall["config"], stall["load"]
    ratio = stall["p99_ratio"]
    verdict = "met" if ratio <= GOAL else "**not met**"
    lines = ["## Loop stall", ""]
    lines.append(
        f"Probe: one stream of {len(PROBE_CHUNK)}-byte chunks (`text`, APPEND) on an id of its "
        f"own, one at a time, {config['probe_interval'] * 1e3:g} ms apart. Load: "
        f"{config['heavy_streams']} streams of {config['chunk_bytes'] // KiB:,} KiB chunks of "
        f"dense JSON (`json`, APPEND) sharing {config['heavy_ids']} ids, and "
        f"{config['readers']} GetCompleteText loops on those ids. Idle {config['idle']:g} s, "
        f"then {config['warmup']:g} s of load before {config['loaded']:g} s of loaded probing."
    )
    lines += ["", "| phase | probes | p50 ms | p90 ms | p99 ms | max ms | over 100 ms |"]
    lines.append("|---|---|---|---|---|---|---|")
    for phase in ("idle", "loaded"):
        row = stall[phase]
        cells = [_ms(row[key]) for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")]
        lines.append(
            f"| {phase} | {row['probes']:,} | {' | '.join(cells)} | {row['over_100ms']:,} |"
        )
    lines += ["", f"loaded p99 / idle p99: {ratio:.1f} (goal ≤ {GOAL:g}): {verdict}", ""]
    errors = load["errors"] + stall["idle"]["errors"] + stall["loaded"]["errors"]
    lines.append(
        f"While probed: {load['chunks_while_probed']:,} heavy chunks answered "
        f"({load['mib_per_s_while_probed']:.2f} MiB/s), {load['reads_while_probed']:,} "
        f"GetCompleteText. Whole run: {load['ids']:,} shared ids opened, {load['cleared']:,} "
        f"cleared, {load['limited']:,} RESOURCE_EXHAUSTED, {load['reads_not_found']:,} "
        f"NOT_FOUND reads, {errors:,} other errors. Server CPU {stall['server_cpu_s']:.1f} s, "
        f"peak RSS {stall['peak_rss_mib']:.0f} MiB; {stall['seconds']:.0f} s in all."
    )
    for sample in load["error_samples"]:
        lines.append(f"- error: {sample}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.target:
        result = run_on_loop(lambda: generate(args), args.event_loop)
        print(json.dumps(result))
        return 0
    fields = {item.name for item in dataclasses.fields(StallConfig)}
    config = StallConfig(**{k: v for k, v in vars(args).items() if k in fields})
    print(render(run(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
