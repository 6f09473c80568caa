"""`--metrics-port`: Prometheus text at /metrics, scraped over HTTP from real servers while
and after real calls run, and parsed with prometheus_client's own parser."""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import grpc_observability
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT, Conversation, InProcessServer, ServerProcess
from prometheus_client.parser import text_string_to_metric_families

from server import grpc_metrics
from server.app import BindError, create_server
from server.cli import parse_config
from server.config import Config

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
APPEND = pb.DELTA_MODE_APPEND
SNAPSHOT = pb.DELTA_MODE_SNAPSHOT
SERVICE = "chunkwise.v1.StreamingParser"


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when it is not there (a counter not yet counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def chunks(samples: Samples, processor: str, mode: str, code: str) -> float:
    return value(samples, "chunkwise_chunks_total", processor=processor, mode=mode, code=code)


def wait_for(port: int, name: str, expected: float, **labels: str) -> Samples:
    """Scrape until the sample reaches `expected`: gRPC hands the A66 figures to
    OpenTelemetry in batches, every half second. Then once more after a batch, so that a
    figure past `expected` is seen too."""
    deadline = time.monotonic() + TIMEOUT
    while value(samples := scrape(port), name, **labels) < expected:
        assert time.monotonic() < deadline, f"{name}{labels} stayed at {value(samples, name)}"
        time.sleep(0.1)
    time.sleep(1.0)
    return scrape(port)


@pytest.fixture
def metrics_server(server_factory: Callable[..., InProcessServer]) -> InProcessServer:
    return server_factory(metrics_port=0)


def metrics_port(server: InProcessServer) -> int:
    port = server.server.metrics_port
    assert port is not None
    return port


def test_every_message_is_counted_once_under_its_code(metrics_server: InProcessServer) -> None:
    port = metrics_port(metrics_server)
    before = scrape(port)
    assert value(before, "chunkwise_streams_open") == 0
    assert chunks(before, "json", "APPEND", "OK") == 0
    with metrics_server.channel() as channel:
        talk = Conversation(pb_grpc.StreamingParserStub(channel))
        pieces = ['{"city": "Par', "is ", "é", "tê", '"}']
        for number, piece in enumerate(pieces, 1):
            sent = {"processor_type": "json", "mode": APPEND} if number == 1 else {}
            response = talk.send("doc", piece, sequence=number, **sent)
            assert not response.HasField("error")
        during = scrape(port)
        assert value(during, "chunkwise_streams_open") == 1
        assert chunks(during, "json", "APPEND", "OK") == len(pieces)
        assert value(during, "chunkwise_ids_tracked") == 1
        assert value(during, "chunkwise_bytes_tracked") == len("".join(pieces).encode())
        assert value(during, "chunkwise_memory_bytes") > 0
        # Another processor than the id's: refused, counted once under its code.
        refused = talk.send("doc", "x", processor_type="plan")
        assert refused.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        # A resend of sequence 2: a duplicate, answered OK.
        assert talk.send("doc", "is ", sequence=2).duplicate
        talk.close()
    after = scrape(port)
    assert value(after, "chunkwise_streams_open") == 0
    assert chunks(after, "json", "APPEND", "OK") == len(pieces) + 1
    assert chunks(after, "json", "APPEND", "FAILED_PRECONDITION") == 1
    assert value(after, "chunkwise_duplicates_total") == 1
    answered = len(pieces) + 2
    assert value(after, "chunkwise_chunk_engine_seconds_count", processor="json") == answered
    assert value(after, "chunkwise_chunk_engine_seconds_bucket", processor="json", le="+Inf") == (
        answered
    )
    assert value(after, "chunkwise_delta_bytes_total") == len("".join(pieces).encode())
    assert value(after, "chunkwise_memory_budget_bytes") == Config().max_memory_bytes


def test_a_refused_request_is_counted_under_the_code_of_its_error(
    metrics_server: InProcessServer,
) -> None:
    port = metrics_port(metrics_server)
    with metrics_server.channel() as channel:
        talk = Conversation(pb_grpc.StreamingParserStub(channel))
        # An unknown processor: its name is not a label (clients could send any).
        talk.send("a", "x", processor_type="no such processor", mode=APPEND)
        talk.send("", "x", processor_type="text")  # an empty id
        talk.send("b", "x", mode=9)  # a mode outside the enum
        talk.close()
    after = scrape(port)
    assert chunks(after, "unknown", "APPEND", "INVALID_ARGUMENT") == 1
    assert chunks(after, "text", "unknown", "INVALID_ARGUMENT") == 1
    assert chunks(after, "unknown", "unknown", "INVALID_ARGUMENT") == 1
    counted = [labels for (name, labels), _ in after.items() if name == "chunkwise_chunks_total"]
    assert len(counted) == 3


def test_resets_and_clear_chunk(metrics_server: InProcessServer) -> None:
    port = metrics_port(metrics_server)
    with metrics_server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        talk = Conversation(stub)
        talk.send("s", "hello", mode=SNAPSHOT)
        talk.send("t", "abc", mode=APPEND)
        assert talk.send("s", "help", mode=SNAPSHOT).reset
        talk.close()
        held = scrape(port)
        assert value(held, "chunkwise_resets_total") == 1
        assert chunks(held, "text", "SNAPSHOT", "OK") == 2
        assert value(held, "chunkwise_ids_tracked") == 2
        assert value(held, "chunkwise_bytes_tracked") == len("help") + len("abc")
        stub.ClearChunk(pb.ClearChunkRequest(chunk_id="s"), timeout=TIMEOUT)
        one_left = scrape(port)
        assert value(one_left, "chunkwise_ids_tracked") == 1
        assert value(one_left, "chunkwise_bytes_tracked") == len("abc")
        assert 0 < value(one_left, "chunkwise_memory_bytes") < value(held, "chunkwise_memory_bytes")
        stub.ClearChunk(pb.ClearChunkRequest(chunk_id="t"), timeout=TIMEOUT)
    cleared = scrape(port)
    assert value(cleared, "chunkwise_ids_tracked") == 0
    assert value(cleared, "chunkwise_bytes_tracked") == 0
    assert value(cleared, "chunkwise_memory_bytes") == 0


def test_expired_ids_are_counted(server_factory: Callable[..., InProcessServer]) -> None:
    server = server_factory(metrics_port=0, idle_ttl=0.2)
    port = metrics_port(server)
    with server.channel() as channel:
        talk = Conversation(pb_grpc.StreamingParserStub(channel))
        talk.send("gone-1", "a")
        talk.send("gone-2", "b")
        talk.close()
    # The server sweeps every second.
    wait_for(port, "chunkwise_ids_expired_total", 2)
    assert value(scrape(port), "chunkwise_ids_expired_total") == 2
    assert value(scrape(port), "chunkwise_ids_tracked") == 0


def test_the_standard_grpc_server_metrics_count_every_call(
    metrics_server: InProcessServer,
) -> None:
    port = metrics_port(metrics_server)
    method = f"{SERVICE}/ListProcessors"
    before = scrape(port)
    with metrics_server.channel() as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        for _ in range(3):
            stub.ListProcessors(pb.ListProcessorsRequest(), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="none"), timeout=TIMEOUT)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        talk = Conversation(stub)
        talk.send("a", "x")
        talk.send("a", "y")
        talk.close()
    started = "grpc_server_call_started_total"
    duration = "grpc_server_call_duration_seconds_count"
    after = wait_for(port, duration, 1, grpc_method=f"{SERVICE}/ProcessChunks", grpc_status="OK")
    for name, labels in ((started, {}), (duration, {"grpc_status": "OK"})):
        calls = value(after, name, grpc_method=method, **labels)
        assert calls - value(before, name, grpc_method=method, **labels) == 3
    get = f"{SERVICE}/GetCompleteText"
    assert value(after, duration, grpc_method=get, grpc_status="NOT_FOUND") == 1
    stream = {"grpc_method": f"{SERVICE}/ProcessChunks", "grpc_status": "OK"}
    assert value(after, started, grpc_method=stream["grpc_method"]) == 1
    for direction in ("sent", "rcvd"):
        name = f"grpc_server_call_{direction}_total_compressed_message_size_bytes"
        assert value(after, f"{name}_count", **stream) == 1
        assert value(after, f"{name}_sum", **stream) > 0
        assert value(after, f"{name}_count", grpc_method=method, grpc_status="OK") == 3
    # A66's buckets, not OpenTelemetry's defaults (0, 5, 10, ... 10,000 seconds or bytes).
    for name, bound in (
        ("grpc_server_call_duration_seconds_bucket", "0.0001"),
        ("grpc_server_call_sent_total_compressed_message_size_bytes_bucket", "1024.0"),
    ):
        assert (name, frozenset({**stream, "le": bound}.items())) in after
    # The test's own client channels are in this process too: their side is not exported.
    assert not [name for name, _ in after if name.startswith("grpc_client_")]


def test_the_grpc_metrics_plugin_is_released_when_the_last_server_stops() -> None:
    assert not grpc_metrics.registered()
    first = InProcessServer(Config(metrics_port=0))
    second = InProcessServer(Config(metrics_port=0))
    try:
        assert grpc_metrics.registered()
        first.close()
        assert grpc_metrics.registered()
        with second.channel() as channel:
            pb_grpc.StreamingParserStub(channel).ListProcessors(pb.ListProcessorsRequest())
        method = f"{SERVICE}/ListProcessors"
        wait_for(metrics_port(second), "grpc_server_call_started_total", 1, grpc_method=method)
    finally:
        second.close()
    assert not grpc_metrics.registered()
    # gRPC allows one global plugin: none is left behind to refuse the next.
    plugin = grpc_observability.OpenTelemetryPlugin()
    plugin.register_global()
    plugin.deregister_global()


def test_a_metrics_port_in_use_stops_the_server_before_it_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = Config(host="127.0.0.1", port=0, metrics_port=port)
        server = InProcessServer(Config())
        try:
            with pytest.raises(BindError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
                server.run(create_server(config))
        finally:
            server.close()
    assert not grpc_metrics.registered()


def test_the_metrics_port_comes_from_its_flag_or_environment_variable() -> None:
    assert Config().metrics_port is None
    assert parse_config([], {}).metrics_port is None
    assert parse_config([], {"CHUNKWISE_METRICS_PORT": "9464"}).metrics_port == 9464
    flag_wins = parse_config(["--metrics-port", "0"], {"CHUNKWISE_METRICS_PORT": "9464"})
    assert flag_wins.metrics_port == 0
    with pytest.raises(SystemExit) as bad:
        parse_config(["--metrics-port", "65536"], {})
    assert bad.value.code == 2


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on, from /proc."""
    sockets = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in sockets:  # 0A: LISTEN
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads listening sockets from /proc"
)


@linux_only
def test_without_the_flag_nothing_but_grpc_listens(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process()
    assert listening_ports(server.process.pid) == {server.port}
    server.terminate()
    assert server.wait()[0] == 0


@linux_only
def test_a_server_process_serves_metrics_and_exits_on_sigterm(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process("--metrics-port", "0")
    (port,) = listening_ports(server.process.pid) - {server.port}
    with grpc.insecure_channel(server.address) as channel:
        talk = Conversation(pb_grpc.StreamingParserStub(channel))
        for piece in ("a", "b", "c"):
            talk.send("p", piece, mode=APPEND)
        talk.close()
    samples = wait_for(
        port,
        "grpc_server_call_duration_seconds_count",
        1,
        grpc_method=f"{SERVICE}/ProcessChunks",
        grpc_status="OK",
    )
    assert chunks(samples, "text", "APPEND", "OK") == 3
    assert value(samples, "process_resident_memory_bytes") > 10 << 20
    # The plugin is deregistered once the server stops, or gRPC's export thread would
    # keep the process alive: wait() fails after its timeout.
    server.terminate()
    status, _, stderr = server.wait()
    assert status == 0, stderr
    assert f'"metrics_port": {port}' in stderr
