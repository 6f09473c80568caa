"""The loop-stall bench: does a stream sending megabyte chunks stall the others?

The contract says one stream's megabyte chunks must not stall unrelated streams. A probe
stream sends 16-byte chunks on an id of its own, one at a time, each waiting for its
response, and records the round trips:

1. idle: the probe alone;
2. loaded: the same probe, on the same connection, while other streams send 1 MiB chunks of
   dense JSON (short strings in an array, the most engine time per byte) under the `json`
   processor, several streams sharing each id so that their chunks queue on it, and readers
   call GetCompleteText on those ids in a loop.

The figure is loaded p99 / idle p99 (goal ≤ 2). Anything on the server that makes an
unrelated request wait for an id's megabyte chunk (a lock taken on the event loop, a
worker pool full of blocked threads, a long pause of the GIL) shows up in it.

Three processes, so that the probe's round trip is the server's alone: the server
(`python -m server`, on CPU 0 where there are two), the load (CPU 1) and the probe (CPU 1).
A probe sharing the load's event loop waited for that loop to handle 7 MB responses and
1 MiB requests, a client-side stall counted against the server. The load does little work
now (its streams pass responses through as bytes and look only for an error field), so
it leaves the probe most of CPU 1.

    python -m bench stall                            # about two minutes, with the floor
    python -m bench.loop_stall --target HOST:PORT    # against a running server
    python -m bench.loop_stall --server floor        # against bench/stall_floor.py
    python -m bench.loop_stall --role probe|load --target HOST:PORT   # one child alone
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import subprocess
import sys
import threading
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
    # Each channel its own connection: the heavy streams spread over them.
    ("grpc.use_local_subchannel_pool", 1),
]
RPC_TIMEOUT = 120.0
_SERVICE = "/" + pb.DESCRIPTOR.services_by_name["StreamingParser"].full_name
PROCESS_CHUNKS = f"{_SERVICE}/ProcessChunks"
GET_COMPLETE_TEXT = f"{_SERVICE}/GetCompleteText"
# ProcessChunksResponse.error = 5, length-delimited.
_ERROR_FIELD = 5
ROLES = ("probe", "load")
SERVERS = ("chunkwise", "floor")
# Children's spare time past the phases, for starting up and shutting down.
_SLACK = 120.0


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
    event_loop: str = "auto"  # of the server, the load and the probe
    # "floor": bench/stall_floor.py, answers of the same sizes and no engine work.
    server: str = "chunkwise"


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


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def response_error(data: bytes) -> pb.Error | None:
    """The `error` of a serialized ProcessChunksResponse, None when it has none.

    Only the top-level fields are walked, skipping over their contents, so a 7 MB answer
    costs a handful of steps, not a parse.
    """
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, at = _varint(data, at)
        elif wire_type == 2:
            size, at = _varint(data, at)
            if number == _ERROR_FIELD:
                return pb.Error.FromString(data[at : at + size])
            at += size
        else:
            raise ValueError(f"unexpected wire type {wire_type} in a ProcessChunksResponse")
    return None


def _stdin_closed() -> asyncio.Future[None]:
    """Done once the parent closes this process's stdin (or writes a line to it)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def wait() -> None:
        sys.stdin.readline()
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    threading.Thread(target=wait, daemon=True).start()
    return done


def _say(message: dict) -> None:
    print(json.dumps(message), flush=True)


# --- the load (a child process) -------------------------------------------------------


class Lockstep:
    """One raw ProcessChunks stream: bytes out, bytes in, each request waiting for its
    response. Nothing is parsed: a response is checked with `response_error`."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._call = channel.stream_stream(
            PROCESS_CHUNKS, request_serializer=None, response_deserializer=None
        )(timeout=None)

    async def send(self, request: bytes) -> bytes:
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
    # time.monotonic() of each answer, a clock all processes share: the parent counts
    # those that came while the probe ran.
    chunk_times: list[float] = field(default_factory=list)
    read_times: list[float] = field(default_factory=list)

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
                opening = pb.ProcessChunksRequest(
                    chunk_id=chunk_id, chunk="[", processor_type="json", mode=APPEND
                )
                error = response_error(await opener.send(opening.SerializeToString()))
                if error is not None:
                    self._tally.error(f"opening {chunk_id}: {error.message}")
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
    channel: grpc.aio.Channel, shared: SharedId, chunk: str, tally: LoadTally
) -> None:
    stub = pb_grpc.StreamingParserStub(channel)
    stream = Lockstep(channel)
    # Serialized once per id: a megabyte request is not rebuilt for every send.
    request_id, request = "", b""
    try:
        while True:
            chunk_id = await shared.reserve(len(chunk), stream, stub)
            if chunk_id != request_id:
                request_id = chunk_id
                request = pb.ProcessChunksRequest(
                    chunk_id=chunk_id, chunk=chunk
                ).SerializeToString()
            try:
                error = response_error(await stream.send(request))
            finally:
                shared.release(chunk_id, stub)
            tally.chunks += 1
            tally.chunk_bytes += len(chunk)
            tally.chunk_times.append(time.monotonic())
            if error is None:
                continue
            if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]:
                tally.limited += 1
            else:
                tally.error(f"{chunk_id}: {error.code} {error.message}")
    finally:
        stream.cancel()


async def _reader(
    channel: grpc.aio.Channel, shared: SharedId, interval: float, tally: LoadTally
) -> None:
    # The text is not looked at: its size is enough, and parsing 8 MB is the load's time.
    read = channel.unary_unary(
        GET_COMPLETE_TEXT,
        request_serializer=pb.GetCompleteTextRequest.SerializeToString,
        response_deserializer=None,
    )
    while True:
        chunk_id = shared.current
        if chunk_id is not None:
            request = pb.GetCompleteTextRequest(chunk_id=chunk_id)
            try:
                response = await read(request, timeout=RPC_TIMEOUT)
                tally.reads += 1
                tally.read_bytes += len(response)
                tally.read_times.append(time.monotonic())
            except grpc.aio.AioRpcError as error:
                # Between a replacement and the first chunk of the new id, or just cleared.
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    tally.reads_not_found += 1
                else:
                    tally.error(f"GetCompleteText: {error.code().name} {error.details()}")
        await asyncio.sleep(interval)


async def load(args: argparse.Namespace) -> dict:
    """Heavy streams and readers against `args.target` until stdin closes; the tally.

    Says `{"ready": true}` once its channels are connected and its streams started.
    """
    stop = _stdin_closed()
    channels = [
        grpc.aio.insecure_channel(args.target, options=CHANNEL_OPTIONS)
        for _ in range(args.heavy_channels)
    ]
    for channel in channels:
        await asyncio.wait_for(channel.channel_ready(), 10)
    tally = LoadTally()
    shared = [SharedId(f"{args.tag}-heavy-{i}", args, tally) for i in range(args.heavy_ids)]
    chunk = dense_json(args.chunk_bytes)
    tasks = [
        asyncio.create_task(
            _heavy_stream(channels[i % len(channels)], shared[i % len(shared)], chunk, tally)
        )
        for i in range(args.heavy_streams)
    ]
    tasks += [
        asyncio.create_task(
            _reader(
                channels[i % len(channels)], shared[i % len(shared)], args.reader_interval, tally
            )
        )
        for i in range(args.readers)
    ]
    _say({"ready": True})
    try:
        await stop
    finally:
        for one in shared:
            one.closing = True
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in results:
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            tally.error(f"{type(outcome).__name__}: {outcome}")
    for channel in channels:
        await channel.close()
    return dataclasses.asdict(tally)


# --- the probe (a child process) ------------------------------------------------------


async def _probe(
    stub: pb_grpc.StreamingParserStub, tag: str, seconds: float, interval: float
) -> dict:
    """Round trips of 16-byte chunks on an id of the probe's own for `seconds`: their
    summary, how many responses carried an error, and when probing started and ended."""
    stream = stub.ProcessChunks(timeout=None)
    chunk_id = f"{tag}-probe"
    request = pb.ProcessChunksRequest(
        chunk_id=chunk_id, chunk=PROBE_CHUNK, processor_type="text", mode=APPEND
    )
    round_trips: list[float] = []
    errors = 0
    sent = 0
    began = time.monotonic()
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            # 16 bytes a chunk: far from the text limit even at thousands a second.
            if sent * len(PROBE_CHUNK) >= TEXT_LIMIT // 2:
                await stub.ClearChunk(pb.ClearChunkRequest(chunk_id=chunk_id), timeout=RPC_TIMEOUT)
                sent = 0
            started = time.perf_counter()
            await stream.write(request)
            response = await stream.read()
            round_trips.append(time.perf_counter() - started)
            if response is grpc.aio.EOF:
                raise RuntimeError(f"the probe's stream ended: {await stream.code()}")
            sent += 1
            errors += response.HasField("error")
            if interval:
                await asyncio.sleep(interval)
    finally:
        stream.cancel()
    ended = time.monotonic()
    await stub.ClearChunk(pb.ClearChunkRequest(chunk_id=chunk_id), timeout=RPC_TIMEOUT)
    return {**summarize(round_trips), "errors": errors, "began": began, "ended": ended}


async def probe(args: argparse.Namespace) -> dict:
    """The idle phase, said at once; then, when a line comes on stdin, the loaded phase."""
    channel = grpc.aio.insecure_channel(args.target, options=CHANNEL_OPTIONS)
    await asyncio.wait_for(channel.channel_ready(), 10)
    stub = pb_grpc.StreamingParserStub(channel)
    _say({"idle": await _probe(stub, f"{args.tag}-idle", args.idle, args.probe_interval)})
    await _stdin_closed()
    loaded = await _probe(stub, f"{args.tag}-loaded", args.loaded, args.probe_interval)
    await channel.close()
    return {"loaded": loaded}


# --- the bench (the parent process) ---------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loop_stall", description=__doc__)
    parser.add_argument("--target", help="HOST:PORT of a running server instead of a new one")
    parser.add_argument("--role", choices=ROLES, help="run one child alone; it prints JSON")
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
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default=defaults.server,
        help="the server started when no --target is given (floor: bench/stall_floor.py)",
    )
    parser.add_argument("--tag", default="stall", help="prefix of every chunk id")
    return parser.parse_args(argv)


def _child(role: str, address: str, config: StallConfig, tag: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.loop_stall", "--role", role, "--target", address]
    for item in dataclasses.fields(config):
        command += [f"--{item.name.replace('_', '-')}", str(getattr(config, item.name))]
    return subprocess.Popen(
        [*command, "--tag", tag],
        cwd=service_bench.REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=service_bench._on_cpu(service_bench.LOADGEN_CPU),
    )


def _said(child: subprocess.Popen[str]) -> dict:
    line = child.stdout.readline()
    if not line:
        raise RuntimeError(f"a {child.args[3]} child ended ({child.wait()}): {child.args}")
    return json.loads(line)


def _while(began: float, ended: float, times: list[float]) -> int:
    return sum(1 for t in times if began <= t <= ended)


def run(config: StallConfig, target: str | None = None) -> dict:
    """The two phases against the server at `target`, or a new one (then with its CPU and
    memory figures); the figures as a dict."""
    started = time.perf_counter()
    server = None
    if target is None:
        if config.server == "floor":
            server = service_bench.stall_floor_server(config.event_loop)
        else:
            server = service_bench.chunkwise_server(config.event_loop)
        server.start()
        target = server.address
    tag = f"stall-{uuid.uuid4().hex[:8]}"
    children: list[subprocess.Popen[str]] = []
    # A child that hangs is killed, which ends the reads below.
    watchdog = threading.Timer(
        config.idle + config.warmup + config.loaded + _SLACK,
        lambda: [child.kill() for child in children],
    )
    watchdog.start()
    result: dict = {}
    try:
        cpu_before = server.cpu_seconds() if server else 0.0
        prober = _child("probe", target, config, tag)
        children.append(prober)
        idle = _said(prober)["idle"]
        loader = _child("load", target, config, tag)
        children.append(loader)
        _said(loader)  # ready
        time.sleep(config.warmup)
        prober.stdin.write("go\n")
        prober.stdin.flush()
        loaded = _said(prober)["loaded"]
        loader.stdin.close()
        tally = _said(loader)
        for child in children:
            if child.wait() != 0:
                raise RuntimeError(f"a child failed ({child.returncode}): {child.args}")
        if server is not None:
            result["server_cpu_s"] = server.cpu_seconds() - cpu_before
            result.update(server.memory())
    finally:
        watchdog.cancel()
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        if server is not None:
            server.stop()
    began, ended = loaded.pop("began"), loaded.pop("ended")
    del idle["began"], idle["ended"]
    elapsed = ended - began
    chunks = _while(began, ended, tally.pop("chunk_times"))
    reads = _while(began, ended, tally.pop("read_times"))
    result.update(
        {
            "idle": idle,
            "loaded": loaded,
            "p99_ratio": loaded["p99_ms"] / idle["p99_ms"],
            "load": {
                **tally,
                "loaded_seconds": elapsed,
                "chunks_while_probed": chunks,
                "mib_per_s_while_probed": chunks * config.chunk_bytes / MiB / elapsed,
                "reads_while_probed": reads,
            },
            "config": dataclasses.asdict(config),
            "seconds": time.perf_counter() - started,
        }
    )
    return result


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.1f}"


def render(stall: dict) -> str:
    """The bench's section of the report, in Markdown."""
    config, load = stall["config"], stall["load"]
    ratio = stall["p99_ratio"]
    verdict = "met" if ratio <= GOAL else "**not met**"
    if config.get("server") == "floor":
        lines = ["## Loop stall: the floor", ""]
        lines += [
            "Server: bench/stall_floor.py, a bare grpc.aio server sending chunkwise's answers "
            "with no engine: what any grpc.aio server would wait for under this load.",
            "",
        ]
    else:
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
        f"NOT_FOUND reads, {errors:,} other errors."
        + (
            f" Server CPU {stall['server_cpu_s']:.1f} s, peak RSS {stall['peak_rss_mib']:.0f} MiB;"
            if "server_cpu_s" in stall
            else ""
        )
        + f" {stall['seconds']:.0f} s in all."
    )
    for sample in load["error_samples"]:
        lines.append(f"- error: {sample}")
    return "\n".join(lines) + "\n"


def render_floor(stall: dict, floor: dict) -> str:
    """The floor's section, and chunkwise's loaded p99 against the floor's."""
    ratio = stall["loaded"]["p99_ms"] / floor["loaded"]["p99_ms"]
    return (
        render(floor)
        + f"\nchunkwise's loaded p99 / the floor's: {ratio:.1f} (1 would be all grpc.aio's)\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role is not None:
        if not args.target:
            raise SystemExit("--role needs --target")
        role = probe if args.role == "probe" else load
        _say(run_on_loop(lambda: role(args), args.event_loop))
        return 0
    fields = {item.name for item in dataclasses.fields(StallConfig)}
    config = StallConfig(**{k: v for k, v in vars(args).items() if k in fields})
    print(render(run(config, args.target)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
