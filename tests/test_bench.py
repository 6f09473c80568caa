"""The benchmark harness measures what it says: its documents, chunkings, peers, figures,
echo server, load generator and profile buckets, each checked against an independent
expectation, and a tiny end-to-end run of each bench."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import subprocess
import sys

import grpc
import pytest
from chunkwise.v1 import streaming_pb2, streaming_pb2_grpc

from bench import (
    compare,
    echo_server,
    engine_bench,
    loadgen,
    loop_stall,
    peers,
    profile,
    report,
    service_bench,
    stall_floor,
    timing,
    workloads,
)
from bench.__main__ import main as bench_main


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize("name", workloads.WORKLOAD_NAMES)
def test_workloads_are_seeded_valid_json_of_about_the_asked_size(name):
    doc = workloads.make(name, 64 * 1024)
    assert doc == workloads.make(name, 64 * 1024)
    json.loads(doc)
    assert 0.95 * 64 * 1024 <= len(doc.encode()) <= 1.05 * 64 * 1024


def test_plan_has_escapes_surrogate_pairs_and_raw_multibyte_text():
    doc = workloads.plan(32 * 1024)
    for escape in ("\\n", '\\"', "\\u00e9", "\\ud83d\\ude80"):
        assert escape in doc
    assert "é" in doc and "🚀" in doc and "—" in doc
    assert list(json.loads(doc)) == ["plan_markdown"]


def test_metric_has_100_yaml_files():
    files = json.loads(workloads.metric(64 * 1024))["files"]
    assert len(files) == 100
    assert all(f["name"].endswith(".yml") and "\n" in f["yml_content"] for f in files)


def test_nested_reaches_depth_20_and_every_kind_of_number():
    doc = workloads.nested(64 * 1024)
    assert _depth(json.loads(doc)) == 20
    numbers = []
    json.loads(doc, parse_int=numbers.append, parse_float=numbers.append)
    assert any(len(n.lstrip("-")) > 19 for n in numbers)  # past 64 bits
    assert any("e" in n for n in numbers) and any("E+" in n for n in numbers)
    assert "-0" in numbers and any("." in n for n in numbers)


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 16, 256])
def test_chunks_rejoin_and_stay_within_their_byte_size(chunk_bytes):
    text = 'a"é—\\u00e9🚀' * 50 + "end"
    pieces = workloads.chunks(text, chunk_bytes)
    assert "".join(pieces) == text
    for piece in pieces:
        # Only a single code point wider than the limit may pass it.
        assert len(piece.encode()) <= chunk_bytes or len(piece) == 1


def _close_by_char_loop(buffer: str) -> str:
    in_string = escaped = False
    stack = []
    for ch in buffer:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    return buffer + ('"' if in_string else "") + "".join(reversed(stack))


@pytest.mark.parametrize("name", workloads.WORKLOAD_NAMES)
def test_original_repair_equals_a_plain_char_loop_on_every_prefix(name):
    doc = workloads.make(name, 4096)[:1500]  # every kind of token, escapes included
    for end in range(len(doc) + 1):
        assert peers.close_partial_json(doc[:end]) == _close_by_char_loop(doc[:end])


def test_original_reparser_reads_what_it_read_and_fails_where_it_failed():
    assert peers.OriginalReparser.parse_prefix('{"a": ["x') == {"a": ["x"]}
    assert peers.OriginalReparser.parse_prefix('{"a": "x\\') is None  # trailing backslash
    assert peers.OriginalReparser.parse_prefix('{"a": [1,') is None  # trailing comma
    assert peers.OriginalReparser.parse_prefix('{"a": tr') is None  # partial literal


@pytest.mark.parametrize(
    "make_peer",
    [peers.OriginalReparser, peers.JiterReparser, peers.PartialJsonParserReparser, peers.IjsonPeer],
)
def test_every_push_peer_reads_a_whole_document_fed_in_chunks(make_peer):
    doc = workloads.nested(1024)
    chunks = workloads.chunks(doc, 64)
    batches, close_seconds = peers.time_push_peer(make_peer, chunks, 10)
    assert len(batches) == math.ceil(len(chunks) / 10)
    assert close_seconds >= 0
    peer = make_peer()
    for chunk in chunks:
        peer.feed(chunk)
    closed = peer.close()
    if not isinstance(peer, peers.IjsonPeer):
        assert closed == json.loads(doc)


@pytest.mark.parametrize(
    "run",
    [
        lambda chunks: peers.time_push_peer(peers.IjsonPeer, chunks, 10, budget_s=0),
        lambda chunks: peers.time_jsonriver(chunks, 10, budget_s=0),
    ],
    ids=["ijson", "jsonriver"],
)
def test_a_peer_past_its_time_budget_stops_after_one_batch(run):
    batches, close_seconds = run(workloads.chunks(workloads.plan(4096), 16))
    assert len(batches) == 1 and close_seconds is None


def test_jsonriver_is_timed_per_batch():
    chunks = workloads.chunks(workloads.plan(4096), 16)
    batches, _ = peers.time_jsonriver(chunks, 10)
    assert len(batches) == math.ceil(len(chunks) / 10)


def test_flatness_of_a_constant_cost_is_one_and_of_a_growing_cost_is_its_ratio():
    n, batch = 1000, 10
    assert timing.flatness([batch * 1.0] * (n // batch), batch, n) == pytest.approx(1.0)
    cost = [1 + i / n for i in range(n)]  # per-chunk cost growing linearly
    batches = [sum(cost[s : s + batch]) for s in range(0, n, batch)]
    expected = (sum(cost[900:]) / 100) / (sum(cost[:100]) / 100)
    assert timing.flatness(batches, batch, n) == pytest.approx(expected)


def _counting_feeder(work_per_call):
    def make():
        calls = [0]

        def feed(chunk):
            calls[0] += 1
            return sum(range(work_per_call(calls[0])))

        return feed

    return make


def test_interleaved_flatness_is_near_one_for_a_flat_cost_and_large_for_a_growing_one():
    chunks = ["x"] * 2000
    flat = engine_bench.interleaved_flatness(_counting_feeder(lambda n: 2000), chunks, 20)
    growing = engine_bench.interleaved_flatness(_counting_feeder(lambda n: 20 * n), chunks, 20)
    assert 0.5 < flat < 2
    assert growing > 5  # the last 10% do about 19 times the work of the first 10%


def test_fastest_per_batch_takes_each_batch_minimum():
    assert timing.fastest_per_batch([[3, 1, 2], [1, 5, 1]]) == [1, 1, 1]


def test_sampling_points_cover_the_text_evenly_in_any_prefix_of_the_sequence():
    assert [timing.van_der_corput(k) for k in range(1, 8)] == [
        0.5,
        0.25,
        0.75,
        0.125,
        0.625,
        0.375,
        0.875,
    ]


def test_sampled_estimate_of_a_quadratic_reparser_is_close_to_its_full_run():
    # A fake re-parser whose cost is its prefix length, counted instead of timed.
    text = "x" * 10_000
    ends = list(range(16, len(text) + 1, 16))
    full = sum(ends)
    samples = [int((j + 0.5) * len(text) / 50) for j in range(50)]
    estimate = timing.estimate_reparse_total(samples, len(ends))
    assert estimate == pytest.approx(full, rel=0.02)


RAW_PROFILE = [
    "main (server/cli.py:1);run (asyncio/runners.py:2);x (server/engine/_parser.py:3) 30",
    "main (server/cli.py:1);y (server/servicer.py:4);PyUpb_Message_Init (_message.abi3.so) 20",
    "main (server/cli.py:1);select (selectors.py:5);epoll_wait (libc.so.6) 40",
    "Thread.run (threading.py:6);0x7f (grpc/_cython/cygrpc.so) 10",
    "_worker (concurrent/futures/thread.py:81);_queue_SimpleQueue_get (_queuemodule.c.h:177);"
    "PyThread_acquire_lock_timed (libpython3.11.so.1.0);0x7fbe (libc.so.6);0x7fbf (libc.so.6) 25",
]


def test_profile_buckets_skip_idle_and_go_to_the_frame_nearest_the_leaf():
    summary = profile.summarize(profile.parse_raw(RAW_PROFILE))
    assert summary["samples"] == 125 and summary["busy_samples"] == 60
    buckets = dict(summary["buckets"])
    assert buckets == pytest.approx(
        {"engine": 0.5, "protobuf": 1 / 3, "grpc (cygrpc, grpc.aio)": 1 / 6}
    )
    assert dict(summary["top_inclusive"])["y (server/servicer.py)"] == pytest.approx(1 / 3)


def test_echo_answers_each_request_with_its_chunk_in_order():
    asyncio.run(_echo_conversation())


async def _echo_conversation():
    server, port = await echo_server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = streaming_pb2_grpc.StreamingParserStub(channel)
            requests = [
                streaming_pb2.ProcessChunksRequest(chunk_id="a", chunk=f"c{i}", sequence=i)
                for i in range(1, 6)
            ]
            responses = [r async for r in stub.ProcessChunks(iter(requests))]
    finally:
        await server.stop(None)
    assert [(r.chunk_id, r.sequence, r.delta) for r in responses] == [
        ("a", i, f"c{i}") for i in range(1, 6)
    ]
    assert responses[0].ByteSize() == requests[0].ByteSize()


def _loadgen_args(port: int, **overrides) -> argparse.Namespace:
    argv = ["--target", f"127.0.0.1:{port}", "--warmup", "0.3", "--duration", "0.7"]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return loadgen.parse_args(argv)


def test_loadgen_closed_loop_counts_responses_against_a_real_server(grpc_server):
    # `grpc_server` is the real chunkwise service, in process, on a free port.
    args = _loadgen_args(
        grpc_server.port, kind="closed", streams=4, channels=2, window=3, processor="json"
    )
    result = asyncio.run(loadgen.run(args))
    assert result["errors"] == 0, result["error_samples"]
    assert result["measured_responses"] > 0 and result["msgs_per_s"] > 0
    assert result["responses"] == result["sent"]


def test_loadgen_open_loop_measures_latency_of_due_requests():
    result = asyncio.run(_open_loop_against_echo())
    assert result["errors"] == 0
    # 5 streams x 20/s over the 0.7 s window, give or take a send per stream at the edges.
    assert 60 <= result["measured"] <= 80
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"] < 5000
    assert result["responses"] == result["sent"]


async def _open_loop_against_echo() -> dict:
    server, port = await echo_server.start()
    try:
        return await loadgen.run(_loadgen_args(port, kind="open", streams=5, channels=2, rate=20))
    finally:
        await server.stop(None)


TINY_ENGINE = engine_bench.EngineConfig(
    size=4 * 1024,
    chunk_sizes=(16, 256),
    repeats=1,
    small_sizes=(2 * 1024,),
    estimate_sizes=(2 * 1024, 4 * 1024),
    samples=4,
    sample_budget_s=1.0,
    full_reparse_peers=("original", "jiter", "partial_json_parser"),
    memory_ids=10,
    memory_text_bytes=2 * 1024,
    peer_budget_s=60.0,
)


def test_engine_bench_end_to_end_on_small_documents():
    results = engine_bench.run(TINY_ENGINE)
    for case in results["cases"]:
        for key in ("engine", "json_reader", "ijson", "jsonriver"):
            assert "error" not in case[key], (case["workload"], key, case[key])
            assert case[key]["total_s"] > 0 and case[key]["flatness"] > 0
    for case in results["reparse"]:
        assert all(case["engine_s"].values())
        for figures in case["peers"].values():
            assert figures["estimated_s"][16] > 0
    for row in results["memory"]:
        assert "error" not in row, row
        # The engine holds every id's text, so it cannot take less than the text itself.
        assert row["current_per_byte"] >= 1.0 and row["peak_per_byte"] >= row["current_per_byte"]
    text = report.render(
        {
            "command": "python -m bench engine",
            "date": "today",
            "machine": _machine(),
            "engine": results,
        }
    )
    assert "| flatness ≤ 1.3: plan, 16 B |" in text
    assert "faster than original: plan, 4 KB, 16 B" in text


def test_a_stopped_peer_is_compared_with_the_engine_on_the_same_first_chunks():
    config = dataclasses.replace(TINY_ENGINE, peer_budget_s=0, chunk_sizes=(16,))
    cases = engine_bench.engine_cases(config)
    engine = {"seconds": 1, "peers_available": {}, "cases": cases, "reparse": [], "memory": []}
    text = report.render({"command": "c", "date": "d", "machine": _machine(), "engine": engine})
    for case in cases:
        ijson = case["ijson"]
        assert ijson["partial"] and ijson["chunks_done"] == case["batch"]
        assert ijson["engine_same_chunks_s"] == case["engine"]["batches"][0]
    assert "stopped: " in text and f"(first {case['batch'] / case['chunks']:.0%})" in text


def test_engine_bench_refuses_to_time_an_engine_whose_output_is_wrong():
    doc = workloads.plan(2048)
    chunks = workloads.chunks(doc, 16)

    class Lying:
        output = None
        error = None
        complete_text = doc

    with pytest.raises(AssertionError):
        engine_bench._check_final("plan", doc, Lying())
    engine_bench.time_engine_process("plan", doc, chunks, 8)  # the real engine passes


def _machine() -> dict:
    return {
        "nproc": 2,
        "python": "3",
        "platform": "p",
        "grpcio": "g",
        "protobuf": "p",
        "protobuf_impl": "upb",
        "loadavg": "0",
    }


def test_service_bench_end_to_end_against_real_processes():
    load = service_bench.Load("2 streams", "closed", streams=2, channels=1, window=2)
    config = service_bench.ServiceConfig(
        throughput=(load,),
        latency=service_bench.Load("open", "open", streams=4, channels=1, rate=10.0),
        processors=("json",),
        warmup=0.3,
        duration=0.7,
        latency_warmup=0.3,
        latency_duration=0.7,
        profile_load=load,
        profile_seconds=1.0,
        profile=False,
        latency_rounds=2,
        event_loop="asyncio",
    )
    results = service_bench.run(config)
    assert results["event_loop"] == "asyncio"
    row = results["throughput"][0]
    for name in ("echo", "service"):
        assert row[name]["errors"] == 0 and row[name]["msgs_per_s"] > 0
        assert row[name]["server_cpu_s"] > 0 and row[name]["rss_mib"] > 10
        latency = results["latency"][0][name]
        assert latency["measured"] > 0
        assert len(latency["all_p99_ms"]) == 2
        assert latency["p99_ms"] == min(latency["all_p99_ms"])  # the lower middle of two
    text = report.render(
        {
            "command": "python -m bench service",
            "date": "today",
            "machine": _machine(),
            "service": results,
        }
    )
    assert "| service/echo ≥ 0.6: json, 2 streams |" in text


@pytest.mark.parametrize("event_loop", ["auto", "uvloop", "asyncio"])
def test_both_servers_and_the_load_generator_run_on_the_same_event_loop(event_loop: str):
    load = service_bench._LATENCY
    for server in (
        service_bench.echo_server(event_loop),
        service_bench.chunkwise_server(event_loop),
    ):
        server.address = "127.0.0.1:1"
        for command in (server.command, service_bench._loadgen_command(server, load, "json", 1, 1)):
            flag = command.index("--event-loop")
            assert command[flag + 1] == event_loop
            assert command.count("--event-loop") == 1


def test_the_median_p99_run_is_chosen_whatever_the_order():
    runs = [{"p99_ms": 30.0, "id": "a"}, {"p99_ms": 10.0, "id": "b"}, {"p99_ms": 20.0, "id": "c"}]
    assert service_bench.median_p99_run(runs)["id"] == "c"
    assert service_bench.median_p99_run(runs[:2])["id"] == "b"


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or not {0, 1} <= os.sched_getaffinity(0),
    reason="needs CPUs 0 and 1",
)
def test_children_are_pinned_to_their_cpu():
    for cpu in (service_bench.SERVER_CPU, service_bench.LOADGEN_CPU):
        out = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            preexec_fn=service_bench._on_cpu(cpu),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip() == f"[{cpu}]"


@pytest.mark.parametrize("size", [5, 16, 1000, 1024])
def test_dense_json_chunks_continue_one_array_whatever_their_size(size):
    chunk = loop_stall.dense_json(size)
    assert len(chunk.encode()) == size
    assert json.loads("[" + chunk * 3 + '"end"]')[-1] == "end"


def test_stall_load_finds_a_response_error_without_parsing_the_rest():
    from chunkwise.v1 import streaming_pb2 as pb

    big = pb.ProcessChunksResponse(
        chunk_id="x", sequence=300, delta="d" * 70_000, final=True, complete_text="t" * 5
    )
    assert loop_stall.response_error(big.SerializeToString()) is None
    failed = pb.ProcessChunksResponse(chunk_id="x", delta="d" * 200)
    failed.error.code, failed.error.message = 8, "too big"
    error = loop_stall.response_error(failed.SerializeToString())
    assert (error.code, error.message) == (8, "too big")


def test_stall_bench_end_to_end_against_a_real_server():
    config = loop_stall.StallConfig(
        idle=0.5,
        warmup=1.5,
        loaded=1.5,
        heavy_streams=3,
        heavy_ids=1,
        readers=1,
        heavy_channels=1,
        chunk_bytes=16 * 1024,
        id_bytes=64 * 1024,
        event_loop="asyncio",
    )
    results = loop_stall.run(config)
    for phase in ("idle", "loaded"):
        figures = results[phase]
        assert figures["probes"] > 0 and figures["errors"] == 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    load = results["load"]
    assert load["errors"] == 0, load["error_samples"]
    assert load["chunks"] > 0 and load["reads"] > 0
    # 16 KiB chunks on ids of at most 64 KiB: the shared id was replaced and cleared.
    assert load["ids"] >= 2 and load["cleared"] >= 1
    assert results["p99_ratio"] == pytest.approx(
        results["loaded"]["p99_ms"] / results["idle"]["p99_ms"]
    )
    assert "| loaded | " in loop_stall.render(results)


def test_stall_floor_answers_the_stall_load_with_chunkwise_sizes(grpc_server):
    # The floor stands in for chunkwise under the stall bench's load: each answer it sends
    # must be about the size of chunkwise's to the same request, or it moves other bytes.
    chunk = loop_stall.dense_json(80 * 1024)
    real = asyncio.run(_stall_conversation(f"127.0.0.1:{grpc_server.port}", chunk))
    floor = asyncio.run(_floor_conversation(chunk))
    assert [kind for kind, _ in floor] == [kind for kind, _ in real]
    for (kind, floor_size), (_, real_size) in zip(floor, real, strict=True):
        if kind == "big answer":
            # Paths carry array indices, which grow by a digit now and then.
            assert floor_size == pytest.approx(real_size, rel=0.05), kind
        else:
            assert floor_size == real_size, kind


async def _floor_conversation(chunk: str) -> list[tuple[str, int]]:
    server, port = await stall_floor.start()
    try:
        return await _stall_conversation(f"127.0.0.1:{port}", chunk)
    finally:
        await server.stop(None)


async def _stall_conversation(target: str, chunk: str) -> list[tuple[str, int]]:
    """What the stall load does to one id, and the size of each answer it gets."""
    from chunkwise.v1 import streaming_pb2 as pb

    sizes: list[tuple[str, int]] = []
    chunk_id = "stall-floor-test"
    async with grpc.aio.insecure_channel(target, options=loop_stall.CHANNEL_OPTIONS) as channel:
        stream = loop_stall.Lockstep(channel)
        read = channel.unary_unary(
            loop_stall.GET_COMPLETE_TEXT,
            request_serializer=pb.GetCompleteTextRequest.SerializeToString,
            response_deserializer=None,
        )
        opening = pb.ProcessChunksRequest(
            chunk_id=chunk_id, chunk="[", processor_type="json", mode=loop_stall.APPEND
        )
        sizes.append(("opening answer", len(await stream.send(opening.SerializeToString()))))
        request = pb.ProcessChunksRequest(chunk_id=chunk_id, chunk=chunk).SerializeToString()
        for _ in range(2):
            answer = await stream.send(request)
            assert loop_stall.response_error(answer) is None
            sizes.append(("big answer", len(answer)))
            text = await read(pb.GetCompleteTextRequest(chunk_id=chunk_id))
            sizes.append(("text", len(text)))
        stream.cancel()
        stub = streaming_pb2_grpc.StreamingParserStub(channel)
        cleared = await stub.ClearChunk(pb.ClearChunkRequest(chunk_id=chunk_id))
        assert cleared.cleared
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await read(pb.GetCompleteTextRequest(chunk_id=chunk_id))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    return sizes


def test_bench_stall_command_runs_the_stall_bench_with_its_flags(monkeypatch, capsys):
    configs = []
    figures = {"probes": 10, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "max_ms": 4.0}
    canned = {
        "idle": {**figures, "over_100ms": 0, "errors": 0},
        "loaded": {**figures, "p99_ms": 9.0, "over_100ms": 0, "errors": 0},
        "p99_ratio": 3.0,
        "load": {
            "chunks_while_probed": 1,
            "mib_per_s_while_probed": 1.0,
            "reads_while_probed": 1,
            "ids": 1,
            "cleared": 0,
            "limited": 0,
            "reads_not_found": 0,
            "errors": 0,
            "error_samples": [],
        },
        "server_cpu_s": 1.0,
        "peak_rss_mib": 50.0,
        "seconds": 5.0,
    }

    def run(config):
        configs.append(config)
        if config.server == "floor":
            floor_loaded = {**canned["loaded"], "p99_ms": 4.5}
            return {**canned, "loaded": floor_loaded, "config": dataclasses.asdict(config)}
        return {**canned, "config": dataclasses.asdict(config)}

    monkeypatch.setattr(loop_stall, "run", run)
    assert bench_main(["stall", "--quick", "--stall-idle", "1.5", "--stall-loaded", "2.5"]) == 0
    asked = dataclasses.replace(loop_stall.QUICK, idle=1.5, loaded=2.5)
    # The floor runs beside chunkwise, with the same load.
    assert configs == [asked, dataclasses.replace(asked, server="floor")]
    out = capsys.readouterr().out
    assert "## Loop stall\n" in out and "## Loop stall: the floor\n" in out
    # Each section's own ratio comes from the run's figures (canned: p99_ratio 3.0).
    assert out.count("loaded p99 / idle p99: 3.0 (goal ≤ 2): **not met**") == 2
    assert "chunkwise's loaded p99 / the floor's: 2.0" in out
    assert "## Goals" not in out  # no empty table of the engine and service goals

    configs.clear()
    assert bench_main(["stall", "--quick", "--no-stall-floor"]) == 0
    assert configs == [loop_stall.QUICK]
    assert "the floor" not in capsys.readouterr().out


def test_compare_reads_each_goal_of_a_rendered_report() -> None:
    goals = [("flatness ≤ 2: plan, 16 B", "1.02", True), ("json p99 < 50 ms", "61.0", False)]
    markdown = "Command: x\n\n## Goals\n\n| goal | figure | verdict |\n|---|---|---|\n"
    markdown += "".join(f"| {g} | {f} | {report._verdict(ok)} |\n" for g, f, ok in goals)
    markdown += "\n## Engine\n\n| workload | chunk |\n|---|---|\n| plan | 16 B |\n"
    rows = compare.goal_rows(markdown)
    assert list(rows) == [g for g, _, _ in goals]
    assert rows["json p99 < 50 ms"] == f"61.0 ({report._verdict(False)})"
