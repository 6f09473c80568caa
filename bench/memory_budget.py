"""The memory-budget bench: how close does a server come to --max-memory-bytes, in RSS?

`python -m server --max-memory-bytes B` in a child process; a client then tries, phase by
phase, to make it hold more than B: many ids of plain text in megabyte chunks, many ids of
dense JSON under the `json` processor, numbered metric finals whose responses are kept for
duplicates, and deep JSON with long keys. Each phase goes on until the server refuses with
RESOURCE_EXHAUSTED or it has sent about twice the budget or more, then clears its ids.
After each phase the server's RSS is read from /proc: the figure is (peak RSS - RSS at
start) / B, which the README bounds by 1 plus the responses in flight.

    python -m bench.memory_budget                      # about a minute
    python -m bench.memory_budget --budget-mib 512 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc

from .loop_stall import dense_json
from .service_bench import ServerProcess

MiB = 1 << 20
APPEND = pb.DELTA_MODE_APPEND
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * MiB)]


def _requests(chunk_ids: Iterator[str], chunks: Sequence[str], **fields) -> Iterator:
    for chunk_id in chunk_ids:
        for sequence, chunk in enumerate(chunks, 1):
            yield pb.ProcessChunksRequest(
                chunk_id=chunk_id, chunk=chunk, mode=APPEND, sequence=sequence, **fields
            )


def _phase(stub, name: str, requests: Iterator, server: ServerProcess) -> dict:
    """Send until the server refuses for memory or the requests run out; then clear
    every id the phase touched, so that the next one starts from an empty budget."""
    sent = refused = applied_bytes = 0
    touched: set[str] = set()
    started = time.monotonic()
    stream = stub.ProcessChunks(iter(requests), timeout=600)
    for response in stream:
        sent += 1
        touched.add(response.chunk_id)
        if response.error.code == EXHAUSTED:
            refused += 1
            if refused >= 20:
                stream.cancel()
                break
        else:  # applied, even beside an error for JSON the processor cannot read
            applied_bytes += len(response.delta.encode())
    memory = server.memory()
    for chunk_id in touched:
        stub.ClearChunk(pb.ClearChunkRequest(chunk_id=chunk_id), timeout=60)
    return {
        "phase": name,
        "requests": sent,
        "refused": refused,
        "applied_mib": round(applied_bytes / MiB, 1),
        "seconds": round(time.monotonic() - started, 1),
        **memory,
    }


def run(budget_mib: int) -> dict:
    server = ServerProcess(
        "service",
        [
            sys.executable,
            "-m",
            "server",
            "--port",
            "0",
            "--max-memory-bytes",
            str(budget_mib * MiB),
            "--max-ids",
            "1000000",
        ],
        "auto",
    )
    server.start()
    try:
        time.sleep(1.0)
        start = server.memory()
        phases = []
        with grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
            stub = pb_grpc.StreamingParserStub(channel)
            text = ["t" * MiB] * 8
            phases.append(_phase(stub, "text ids, 1 MiB chunks", _ids_of("text", text), server))
            dense = [dense_json(256 * 1024)]
            phases.append(
                _phase(
                    stub,
                    "json ids, 256 KiB dense chunks",
                    _requests(_names("json", budget_mib * 8), dense, processor_type="json"),
                    server,
                )
            )
            files = '{"files": [' + ",".join(
                f'{{"name": "f{i}", "yml_content": "{"y" * 2000}"}}' for i in range(100)
            )
            phases.append(
                _phase(
                    stub,
                    "metric finals, kept",
                    _finals(_names("metric", budget_mib * 8), files, "]}"),
                    server,
                )
            )
            deep = '{"' + "k" * 4000 + '": ' + '{"a": ' * 500
            phases.append(
                _phase(
                    stub,
                    "deep JSON, long keys",
                    _requests(_names("deep", budget_mib * 8), [deep], processor_type="plan"),
                    server,
                )
            )
        end = server.memory()
    finally:
        server.stop()
    peak = max(p["peak_rss_mib"] for p in phases)
    return {
        "budget_mib": budget_mib,
        "rss_at_start_mib": start["rss_mib"],
        "phases": phases,
        "rss_at_end_mib": end["rss_mib"],
        "peak_rss_mib": peak,
        "peak_over_start_per_budget": round((peak - start["rss_mib"]) / budget_mib, 2),
    }


def _names(prefix: str, count: int) -> Iterator[str]:
    return (f"{prefix}-{n}" for n in range(count))


def _ids_of(prefix: str, chunks: Sequence[str]) -> Iterator:
    return _requests(_names(prefix, 1000), chunks)


def _finals(chunk_ids: Iterator[str], body: str, end: str) -> Iterator:
    for chunk_id in chunk_ids:
        yield pb.ProcessChunksRequest(
            chunk_id=chunk_id, chunk=body, processor_type="metric", mode=APPEND, sequence=1
        )
        yield pb.ProcessChunksRequest(chunk_id=chunk_id, chunk=end, sequence=2, final=True)


def render(result: dict) -> str:
    lines = [
        f"Budget: {result['budget_mib']} MiB (`--max-memory-bytes`); RSS at start "
        f"{result['rss_at_start_mib']:.0f} MiB.",
        "",
        "| phase | requests | refused | applied MiB | RSS after, MiB | peak RSS, MiB |",
        "|---|---|---|---|---|---|",
    ]
    for p in result["phases"]:
        lines.append(
            f"| {p['phase']} | {p['requests']:,} | {p['refused']} | {p['applied_mib']} | "
            f"{p['rss_mib']:.0f} | {p['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        f"(peak RSS - RSS at start) / budget: **{result['peak_over_start_per_budget']}**",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_budget", description=__doc__)
    parser.add_argument("--budget-mib", type=int, default=256)
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args(argv)
    result = run(args.budget_mib)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
