"""The engine bench: the engine and its peers on the same chunks, in one process, no gRPC."""

from __future__ import annotations

import gc
import json
import logging
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from server.engine import Mode

from . import peers, timing, workloads

log = logging.getLogger(__name__)

APPEND = Mode.APPEND
KB = 1 << 10


@dataclass(frozen=True)
class EngineConfig:
    size: int  # bytes of each workload document
    chunk_sizes: tuple[int, ...]
    repeats: int  # runs of the engine per case; each batch keeps its fastest
    small_sizes: tuple[int, ...]  # where re-parsers run in full
    estimate_sizes: tuple[int, ...]  # where re-parsers are estimated from sampled prefixes
    samples: int  # most prefixes sampled per estimate
    sample_budget_s: float  # sampling stops after this long (with at least one sample)
    full_reparse_peers: tuple[str, ...]  # re-parsers run in full at small_sizes
    memory_ids: int
    memory_text_bytes: int
    peer_budget_s: float  # an incremental peer run stops after this long


FULL = EngineConfig(
    size=workloads.MB,
    chunk_sizes=(16, 256),
    repeats=3,
    small_sizes=(64 * KB,),
    estimate_sizes=(64 * KB, 256 * KB, workloads.MB),
    samples=63,
    sample_budget_s=12.0,
    full_reparse_peers=("original", "jiter", "partial_json_parser"),
    memory_ids=1000,
    memory_text_bytes=16 * KB,
    peer_budget_s=30.0,
)

QUICK = EngineConfig(
    size=256 * KB,
    chunk_sizes=(16, 256),
    repeats=1,
    small_sizes=(16 * KB,),
    estimate_sizes=(16 * KB, 256 * KB),
    samples=7,
    sample_budget_s=1.0,
    full_reparse_peers=("original", "jiter"),
    memory_ids=200,
    memory_text_bytes=16 * KB,
    peer_budget_s=2.0,
)

REPARSER_KEYS = {
    "original": peers.OriginalReparser,
    "jiter": peers.JiterReparser,
    "partial_json_parser": peers.PartialJsonParserReparser,
}


def _batch_for(n_chunks: int) -> int:
    # About 500 timed batches per run: each batch lasts far longer than a timer read.
    return max(1, n_chunks // 500)


def _engine_parts() -> tuple[Any, Any, Any]:
    from server.engine import Limits
    from server.engine._jsonreader import JsonReader
    from server.streams import Streams

    # The engine and the store, without the wire: Streams encodes each response (so that
    # duplicates get its bytes), which the service bench times with the rest of the wire.
    return partial(Streams, encode=_no_response), Limits, JsonReader


def _no_response(result: Any) -> bytes:
    return b""


def _check_final(workload: str, doc: str, result: Any) -> None:
    """The bench only means something if the engine did the work: the final response must
    hold the document's content."""
    if result.error is not None:
        raise AssertionError(f"{workload}: final chunk refused: {result.error.message}")
    if result.complete_text != doc:
        raise AssertionError(f"{workload}: complete_text differs from the document")
    expected = json.loads(doc)
    output = result.output
    if workload == "plan":
        ok = output is not None and output.message == expected["plan_markdown"]
    elif workload == "metric":
        ok = output is not None and [f.text for f in output.files] == [
            f["yml_content"] for f in expected["files"]
        ]
    else:
        ok = output is not None and json.loads(output.value_json) == expected
    if not ok:
        raise AssertionError(f"{workload}: the final output does not hold the document")


def time_engine_process(
    workload: str, doc: str, chunks: list[str], batch: int
) -> tuple[list[float], float]:
    """`Streams.answer`, the servicer's call, on every chunk of one id in APPEND mode, with
    the workload's processor; then an empty final chunk, timed apart (it carries the complete
    text and the full output, a one-off cost that is not per chunk)."""
    streaming_parser, limits, _ = _engine_parts()
    parser = streaming_parser(limits(max_text_bytes=64 << 20))
    processor = workloads.PROCESSOR_FOR[workload]
    answer = parser.answer
    perf = time.perf_counter
    batches: list[float] = []
    gc.collect()
    for start in range(0, len(chunks), batch):
        piece = chunks[start : start + batch]
        t0 = perf()
        for chunk in piece:
            result = answer("bench", chunk, processor_type=processor, mode=APPEND).result
            if result.error is not None:
                raise AssertionError(f"{workload}: chunk refused: {result.error.message}")
        batches.append(perf() - t0)
    t0 = perf()
    final = answer("bench", "", processor_type=processor, mode=APPEND, final=True).result
    final_seconds = perf() - t0
    _check_final(workload, doc, final)
    return batches, final_seconds


def time_json_reader(chunks: list[str], batch: int) -> tuple[list[float], float]:
    """The raw incremental reader, `JsonReader.feed` per chunk, then `close()`."""
    _, _, json_reader = _engine_parts()
    reader = json_reader(max_depth=512)
    feed = reader.feed
    perf = time.perf_counter
    batches: list[float] = []
    gc.collect()
    for start in range(0, len(chunks), batch):
        piece = chunks[start : start + batch]
        t0 = perf()
        for chunk in piece:
            feed(chunk)
        batches.append(perf() - t0)
    t0 = perf()
    reader.close()
    return batches, perf() - t0


def _engine_feeder(workload: str) -> Callable[[], Callable[[str], Any]]:
    """Makes feeders that each send chunks to their own id of one shared Streams."""
    streaming_parser, limits, _ = _engine_parts()
    parser = streaming_parser(limits(max_text_bytes=64 << 20))
    processor = workloads.PROCESSOR_FOR[workload]
    ids = iter(range(1 << 30))

    def make() -> Callable[[str], Any]:
        chunk_id = f"flat-{next(ids)}"
        return partial(parser.answer, chunk_id, processor_type=processor, mode=APPEND)

    return make


def _reader_feeder() -> Callable[[str], Any]:
    _, _, json_reader = _engine_parts()
    return json_reader(max_depth=512).feed


def interleaved_flatness(
    make_feed: Callable[[], Callable[[str], Any]], chunks: list[str], batch: int
) -> float:
    """Flatness with the two ends timed in the same moments: one feeder is brought to 90%
    of the chunks untimed, then batches of its last 10% alternate with batches of the
    first 10% sent to a fresh feeder. On a shared machine, load that comes and goes then
    hits both ends alike instead of whichever ran while it lasted."""
    n = len(chunks)
    k = max(1, n // 10)
    late, early = make_feed(), make_feed()
    for chunk in chunks[: n - k]:
        late(chunk)
    perf = time.perf_counter
    head = tail = 0.0
    for start in range(0, k, batch):
        t0 = perf()
        for chunk in chunks[n - k + start : n - k + start + batch]:
            late(chunk)
        t1 = perf()
        for chunk in chunks[start : start + batch]:
            early(chunk)
        t2 = perf()
        tail += t1 - t0
        head += t2 - t1
    return tail / head


def _summary(batches: list[float], batch: int, n_chunks: int, close_seconds: float) -> dict:
    total = sum(batches)
    return {
        "batches": batches,
        "total_s": total,
        "per_chunk_us": total / n_chunks * 1e6,
        "flatness": timing.flatness(batches, batch, n_chunks),
        "close_s": close_seconds,
    }


def _repeat(
    run: Callable[[], tuple[list[float], float]], repeats: int
) -> tuple[list[float], float]:
    results = [run() for _ in range(repeats)]
    return timing.fastest_per_batch([r[0] for r in results]), min(r[1] for r in results)


def engine_cases(config: EngineConfig) -> list[dict]:
    """Engine and JsonReader on each workload and chunk size, plus the incremental peers."""
    cases = []
    for workload in workloads.WORKLOAD_NAMES:
        doc = workloads.make(workload, config.size)
        for chunk_bytes in config.chunk_sizes:
            chunks = workloads.chunks(doc, chunk_bytes)
            batch = _batch_for(len(chunks))
            case: dict[str, Any] = {
                "workload": workload,
                "processor": workloads.PROCESSOR_FOR[workload],
                "doc_bytes": len(doc.encode()),
                "chunk_bytes": chunk_bytes,
                "chunks": len(chunks),
                "batch": batch,
            }
            log.info("engine %s/%dB: %d chunks", workload, chunk_bytes, len(chunks))
            runs = {
                "engine": partial(time_engine_process, workload, doc, chunks, batch),
                "json_reader": partial(time_json_reader, chunks, batch),
            }
            feeders = {"engine": _engine_feeder(workload), "json_reader": _reader_feeder}
            for key, run in runs.items():
                try:
                    batches, close_s = _repeat(run, config.repeats)
                    case[key] = _summary(batches, batch, len(chunks), close_s)
                    case[key]["sequential_flatness"] = case[key].pop("flatness")
                    flat = [
                        interleaved_flatness(feeders[key], chunks, batch)
                        for _ in range(config.repeats)
                    ]
                    case[key]["flatness"] = statistics.median(flat)
                    case[key]["flatness_runs"] = flat
                except NotImplementedError:
                    case[key] = {"error": "not implemented yet"}
                except Exception as exc:  # reported in the results, never hidden
                    case[key] = {"error": f"{type(exc).__name__}: {exc}"}
            budget = config.peer_budget_s
            incremental = {
                "ijson": partial(
                    peers.time_push_peer, peers.IjsonPeer, chunks, batch, budget_s=budget
                ),
                "jsonriver": partial(peers.time_jsonriver, chunks, batch, budget_s=budget),
            }
            engine_batches = case.get("engine", {}).get("batches")
            for key, run in incremental.items():
                log.info("peer %s %s/%dB", key, workload, chunk_bytes)
                try:
                    batches, close_s = run()
                except Exception as exc:  # a peer that fails is reported, not fatal
                    case[key] = {"error": f"{type(exc).__name__}: {exc}"}
                    continue
                if close_s is not None:
                    case[key] = _summary(batches, batch, len(chunks), close_s)
                    continue
                # Stopped at the budget: compare with the engine on the same first chunks.
                done = min(len(chunks), len(batches) * batch)
                case[key] = {
                    "partial": True,
                    "chunks_done": done,
                    "total_s": sum(batches),
                    "engine_same_chunks_s": sum(engine_batches[: len(batches)])
                    if engine_batches
                    else None,
                }
            cases.append(case)
    return cases


def reparse_cases(config: EngineConfig) -> list[dict]:
    """The re-parsing peers. In full where that takes seconds (small sizes); estimated from
    sampled prefixes at every size, the small ones included so the estimate can be checked
    against the full run. The engine is timed on the same documents for the ratios."""
    cases = []
    for workload in workloads.WORKLOAD_NAMES:
        for size in sorted(set(config.small_sizes) | set(config.estimate_sizes)):
            doc = workloads.make(workload, size)
            case: dict[str, Any] = {"workload": workload, "size": size, "peers": {}}
            case["doc_bytes"] = len(doc.encode())
            case["chunks"] = {c: len(workloads.chunks(doc, c)) for c in config.chunk_sizes}
            case["engine_s"] = {}
            for chunk_bytes in config.chunk_sizes:
                chunks = workloads.chunks(doc, chunk_bytes)
                try:
                    batch = _batch_for(len(chunks))
                    batches, _ = _repeat(
                        partial(time_engine_process, workload, doc, chunks, batch),
                        config.repeats,
                    )
                    case["engine_s"][chunk_bytes] = sum(batches)
                except Exception as exc:  # the peers are still worth reporting
                    case["engine_s"][chunk_bytes] = None
                    log.info("engine unavailable for ratios: %s", type(exc).__name__)
            for key, peer in REPARSER_KEYS.items():
                figures: dict[str, Any] = {}
                if size in config.estimate_sizes:
                    log.info("sampling %s on %s at %d bytes", key, workload, size)
                    costs = timing.sampled_prefix_costs(
                        peer.parse_prefix, doc, config.samples, budget_s=config.sample_budget_s
                    )
                    figures["samples"] = len(costs)
                    figures["estimated_s"] = {
                        c: timing.estimate_reparse_total(costs, n)
                        for c, n in case["chunks"].items()
                    }
                if size in config.small_sizes and key in config.full_reparse_peers:
                    figures["measured_s"] = {}
                    for chunk_bytes in config.chunk_sizes:
                        log.info("full %s on %s at %d bytes/%dB", key, workload, size, chunk_bytes)
                        chunks = workloads.chunks(doc, chunk_bytes)
                        batches, _ = peers.time_push_peer(peer, chunks, len(chunks))
                        figures["measured_s"][chunk_bytes] = sum(batches)
                case["peers"][key] = figures
            cases.append(case)
    return cases


def _repo_relative(filename: str) -> str:
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return filename[len(root) :] if filename.startswith(root) else filename


def memory_case(processor: str, text: str, ids: int, chunk_bytes: int = 256) -> dict:
    """Peak traced bytes while `ids` ids each take the whole `text`, fed round-robin in
    APPEND mode; divided by the UTF-8 bytes tracked. Chunk strings are cut while tracing,
    so text the engine keeps counts and text it drops does not."""
    streaming_parser, limits, _ = _engine_parts()
    bounds = []
    data = text.encode()
    pieces = workloads.chunks(text, chunk_bytes)
    offset = 0
    for piece in pieces:
        bounds.append((offset, offset + len(piece)))
        offset += len(piece)
    del pieces
    names = [f"memory-{i:05d}" for i in range(ids)]
    tracked = len(data) * ids
    gc.collect()
    tracemalloc.start()
    try:
        parser = streaming_parser(limits(max_ids=ids * 2))
        for start, end in bounds:
            for name in names:
                result = parser.process(
                    name, text[start:end], processor_type=processor, mode=APPEND
                )
                if result.error is not None:
                    raise AssertionError(f"memory {processor}: {result.error.message}")
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # Where the memory still held is allocated: the lead for whoever makes it smaller.
    sites = [
        [f"{_repo_relative(stat.traceback[0].filename)}:{stat.traceback[0].lineno}", stat.size]
        for stat in snapshot.statistics("lineno")[:6]
    ]
    return {
        "processor": processor,
        "ids": ids,
        "text_bytes": len(data),
        "tracked_bytes": tracked,
        "peak_bytes": peak,
        "current_bytes": current,
        "peak_per_byte": peak / tracked,
        "current_per_byte": current / tracked,
        "top_sites": sites,
    }


def memory_cases(config: EngineConfig) -> list[dict]:
    plan_doc = workloads.plan(config.memory_text_bytes)
    # ASCII-only text: CPython keeps it at one byte a character, so this row shows the
    # engine's own overhead apart from the wider storage non-Latin-1 text needs.
    ascii_doc = workloads.metric(config.memory_text_bytes)
    rows = []
    for processor, label, text in (
        ("text", "plan document", plan_doc),
        ("plan", "plan document", plan_doc),
        ("text", "ASCII YAML document", ascii_doc),
    ):
        log.info("memory %s on %s", processor, label)
        try:
            row = memory_case(processor, text, config.memory_ids)
        except NotImplementedError:
            row = {"processor": processor, "error": "not implemented yet"}
        except Exception as exc:  # reported in the results, never hidden
            row = {"processor": processor, "error": f"{type(exc).__name__}: {exc}"}
        row["text"] = label
        rows.append(row)
    return rows


def run(config: EngineConfig) -> dict:
    started = time.perf_counter()
    results = {
        "peers_available": peers.available(),
        "cases": engine_cases(config),
        "reparse": reparse_cases(config),
        "memory": memory_cases(config),
    }
    results["seconds"] = time.perf_counter() - started
    return results
