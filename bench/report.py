"""Renders bench results as Markdown: the figures, each goal met or not, and the setup."""

from __future__ import annotations

import math
from typing import Any

KB = 1 << 10

FLATNESS_GOAL = 1.3
ORIGINAL_GOAL = 50.0
JITER_GOAL = 5.0
MEMORY_GOAL = 2.5
TEXT_RATIO_GOAL = 0.8
JSON_RATIO_GOAL = 0.6
P99_RATIO_GOAL = 2.0
P99_LIMIT_MS = 50.0


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _size(n: int) -> str:
    return f"{n // (1 << 20)} MB" if n >= 1 << 20 else f"{n // KB} KB"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def _cell(figures: dict, key: str, digits: int = 2) -> str:
    if "error" in figures:
        return figures["error"]
    if figures.get("partial"):
        if key == "total_s":
            return f"stopped: {_num(figures['total_s'])} s for {figures['chunks_done']:,} chunks"
        return "n/a"
    return _num(figures.get(key), digits)


def _flat(figures: dict) -> str:
    if "sequential_flatness" not in figures:
        return _cell(figures, "flatness")
    return f"{_num(figures['flatness'])} ({_num(figures['sequential_flatness'])})"


def _peer_ratio(peer: dict, engine: dict, n_chunks: int) -> str:
    """Peer seconds / engine seconds on the same chunks: all of them, or the first ones
    when the peer was stopped at its time budget."""
    if "error" in peer or "total_s" not in engine:
        return "n/a"
    if peer.get("partial"):
        share = peer["chunks_done"] / n_chunks
        return f"{_ratio(peer['total_s'], peer['engine_same_chunks_s'])} (first {share:.0%})"
    return _ratio(peer.get("total_s"), engine["total_s"])


def render(results: dict) -> str:
    lines = [f"Command: `{results['command']}`", ""]
    lines.append(f"Date: {results['date']} (UTC)")
    machine = results["machine"]
    lines.append(
        f"Machine: {machine['nproc']} cores, Python {machine['python']}, {machine['platform']}; "
        f"grpcio {machine['grpcio']}, protobuf {machine['protobuf']} ({machine['protobuf_impl']}), "
        f"uvloop {machine.get('uvloop') or 'not installed'}; "
        f"load average at start {machine['loadavg']}"
    )
    lines.append("")
    goals: list[tuple[str, str, bool | None]] = []
    body: list[str] = []
    if "engine" in results:
        body += _engine(results["engine"], goals)
    if "service" in results:
        body += _service(results["service"], goals)
    lines.append("## Goals")
    lines.append("")
    lines.append("| goal | figure | verdict |")
    lines.append("|---|---|---|")
    for name, figure, ok in goals:
        lines.append(f"| {name} | {figure} | {_verdict(ok)} |")
    lines.append("")
    return "\n".join(lines + body) + "\n"


def _engine(engine: dict, goals: list) -> list[str]:
    out = ["## Engine", ""]
    out.append(
        f"Engine bench wall time: {_num(engine['seconds'], 0)} s; load average before / after: "
        f"{' / '.join(engine.get('loadavg', ['n/a']))}."
    )
    status = ", ".join(f"{k}: {v}" for k, v in engine["peers_available"].items())
    out += [f"Peers: {status}.", ""]
    out.append(
        "Per workload and chunk size: total seconds (fastest of each timed batch of about "
        "1/500 of the chunks, over the repeats), microseconds per chunk, the empty final "
        "call timed apart, and flatness: mean per-chunk time of the last 10% of chunks / "
        "the first 10%. The engine's and JsonReader's flatness is the median of the repeats "
        "of an interleaved measurement (batches of the last 10% of one id alternate with "
        "batches of the first 10% of a fresh id, so load on the shared machine hits both "
        "ends alike); the sequential figure (from the timed run) is in brackets. The peers' "
        "flatness is sequential, from one run."
    )
    out.append("")
    out.append(
        "| workload | chunk | chunks | engine s | µs/chunk | flatness | final ms | "
        "JsonReader s | µs/chunk | flatness | ijson s | flatness | jsonriver s | flatness |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in engine["cases"]:
        e, r = case["engine"], case["json_reader"]
        i, j = case["ijson"], case["jsonriver"]
        out.append(
            f"| {case['workload']} ({_size(case['doc_bytes'])}) | {case['chunk_bytes']} B | "
            f"{case['chunks']:,} | {_cell(e, 'total_s')} | {_cell(e, 'per_chunk_us', 1)} | "
            f"{_flat(e)} | "
            f"{_num(e['close_s'] * 1e3, 1) if 'close_s' in e else 'n/a'} | "
            f"{_cell(r, 'total_s')} | {_cell(r, 'per_chunk_us', 1)} | {_flat(r)} | "
            f"{_cell(i, 'total_s')} | {_cell(i, 'flatness')} | "
            f"{_cell(j, 'total_s')} | {_cell(j, 'flatness')} |"
        )
        if "flatness" in e:
            goals.append(
                (
                    f"flatness ≤ {FLATNESS_GOAL}: {case['workload']}, {case['chunk_bytes']} B",
                    _num(e["flatness"]),
                    e["flatness"] <= FLATNESS_GOAL,
                )
            )
    out.append("")
    out.append(
        "Speed against the incremental peers (peer seconds / engine seconds; above 1: "
        "the engine is faster). A peer run stops at its time budget; it is then compared "
        "with the engine's time on the same first chunks, and as its cost per chunk grows "
        "with the text, the whole-run ratio would be higher still:"
    )
    out.append("")
    out.append(
        "| workload | chunk | ijson / engine | jsonriver / engine | "
        "ijson / JsonReader | jsonriver / JsonReader |"
    )
    out.append("|---|---|---|---|---|---|")
    for case in engine["cases"]:
        e, r = case["engine"], case["json_reader"]
        i, j = case["ijson"], case["jsonriver"]
        r_total, i_total, j_total = r.get("total_s"), i.get("total_s"), j.get("total_s")
        n = case["chunks"]
        out.append(
            f"| {case['workload']} | {case['chunk_bytes']} B | {_peer_ratio(i, e, n)} | "
            f"{_peer_ratio(j, e, n)} | "
            f"{'n/a' if i.get('partial') else _ratio(i_total, r_total)} | "
            f"{'n/a' if j.get('partial') else _ratio(j_total, r_total)} |"
        )
    out.append("")
    out += _reparse(engine["reparse"], goals)
    out += _memory(engine["memory"], goals)
    return out


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "n/a"
    return f"{numerator / denominator:,.1f}×"


def _reparse(cases: list[dict], goals: list) -> list[str]:
    if not cases:
        return []
    out = ["### Re-parsing peers", ""]
    out.append(
        "A re-parser's cost on a chunk depends only on the prefix it re-reads, so at every "
        "size it is *estimated*: one parse of each of N evenly spaced prefixes, times the "
        "number of chunks. Where a full run takes seconds it is also *measured* by feeding "
        "every chunk, which checks the estimate. The engine is measured in full on the same "
        "document. Ratio: peer seconds / engine seconds."
    )
    out.append("")
    out.append(
        "| workload | size | chunk | engine s | peer | peer s (measured) | "
        "peer s (estimated) | peer / engine |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    largest = max(case["size"] for case in cases)
    for case in cases:
        for chunk_bytes, engine_s in case["engine_s"].items():
            for peer, figures in case["peers"].items():
                measured = figures.get("measured_s", {}).get(chunk_bytes)
                estimated = figures.get("estimated_s", {}).get(chunk_bytes)
                basis = measured if measured is not None else estimated
                count = figures.get("samples")
                sampled = f" ({count} prefixes)" if count else ""
                out.append(
                    f"| {case['workload']} | {_size(case['size'])} | {chunk_bytes} B | "
                    f"{_num(engine_s, 3)} | {peer} | {_num(measured)} | {_num(estimated)}"
                    f"{sampled} | "
                    f"{_ratio(basis, engine_s)}{'' if measured is not None else ' (est.)'} |"
                )
                if case["size"] == largest and chunk_bytes == 16 and engine_s and basis:
                    goal = {"original": ORIGINAL_GOAL, "jiter": JITER_GOAL}.get(peer)
                    if goal is not None:
                        goals.append(
                            (
                                f"≥ {goal:.0f}× faster than {peer}: {case['workload']}, "
                                f"{_size(case['size'])}, 16 B"
                                + ("" if measured is not None else " (peer estimated)"),
                                _ratio(basis, engine_s),
                                basis / engine_s >= goal,
                            )
                        )
    out.append("")
    return out


def _memory(rows: list[dict], goals: list) -> list[str]:
    out = ["### Memory", ""]
    out.append(
        "Peak bytes traced by tracemalloc while the ids take their whole text in 256-byte "
        "chunks, round-robin, APPEND mode; per UTF-8 byte tracked."
    )
    out.append("")
    out.append(
        "| processor | text | ids × bytes | peak MiB | peak / byte | after (current) / byte |"
    )
    out.append("|---|---|---|---|---|---|")
    held: list[dict] = []
    for row in rows:
        if "error" in row:
            out.append(f"| {row['processor']} | {row['text']} | n/a | {row['error']} | | |")
            continue
        out.append(
            f"| {row['processor']} | {row['text']} | {row['ids']:,} × {row['text_bytes']:,} | "
            f"{_num(row['peak_bytes'] / (1 << 20), 1)} | {_num(row['peak_per_byte'])} | "
            f"{_num(row['current_per_byte'])} |"
        )
        if row["peak_per_byte"] > MEMORY_GOAL and row.get("top_sites"):
            held.append(row)
        goals.append(
            (
                f"memory ≤ {MEMORY_GOAL} B/B: {row['processor']}, {row['text']}",
                _num(row["peak_per_byte"]),
                row["peak_per_byte"] <= MEMORY_GOAL,
            )
        )
    out.append("")
    for row in held:
        out.append(
            f"Where the `{row['processor']}` processor's memory is held at the end "
            f"({row['text']}; tracemalloc, largest allocation lines):"
        )
        out.append("")
        for site, size in row["top_sites"]:
            out.append(f"- `{site}`: {size / row['tracked_bytes']:.2f} B per tracked byte")
        out.append("")
    return out


def _service(service: dict, goals: list) -> list[str]:
    out = ["## Service", ""]
    out.append(
        f"Service bench wall time: {_num(service['seconds'], 0)} s; load average before / "
        f"after: {' / '.join(service.get('loadavg', ['n/a']))}. Event loop of both servers "
        f"and the load generator: {service.get('event_loop', 'auto')} (auto: uvloop where "
        "installed). Closed loop: each stream "
        "keeps a window of requests in flight (16 for one stream, 4 for 100, 2 for 1,000); "
        "16-byte chunks in APPEND mode, numbered; `text` streams carry the `plan` document, "
        "`json` streams the `nested` one (32 KB each, then a fresh id). Each server's best "
        "run is shown, every run beside it. CPU ratio: echo server CPU per message / service "
        "server CPU per message, the throughput ratio the two would reach if each had a core "
        "to itself."
    )
    out.append("")
    out.append(
        "| load | processor | echo msgs/s | service msgs/s | service / echo | "
        "every run's msgs/s (echo; service) | "
        "server CPU s per 1,000 msgs (echo / service) | CPU ratio | "
        "client CPU s (echo / service) | errors |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for row in service["throughput"]:
        echo, svc = row["echo"], row["service"]
        ratio = svc["msgs_per_s"] / echo["msgs_per_s"] if echo["msgs_per_s"] else None
        echo_cpu, svc_cpu = echo["server_cpu_s_per_1000_msgs"], svc["server_cpu_s_per_1000_msgs"]
        every = "; ".join(
            ", ".join(_num(v, 0) for v in r.get("all_msgs_per_s", [r["msgs_per_s"]]))
            for r in (echo, svc)
        )
        out.append(
            f"| {row['load']} | {row['processor']} | {_num(echo['msgs_per_s'], 0)} | "
            f"{_num(svc['msgs_per_s'], 0)} | {_num(ratio)} | {every} | "
            f"{_num(echo_cpu, 3)} / {_num(svc_cpu, 3)} | "
            f"{_num(echo_cpu / svc_cpu if echo_cpu and svc_cpu else None)} | "
            f"{_num(echo['client_cpu_s'], 1)} / {_num(svc['client_cpu_s'], 1)} | "
            f"{echo['errors'] + svc['errors']} |"
        )
        goal = TEXT_RATIO_GOAL if row["processor"] == "text" else JSON_RATIO_GOAL
        goals.append(
            (
                f"service/echo ≥ {goal}: {row['processor']}, {row['load']}",
                _num(ratio),
                None if ratio is None else ratio >= goal,
            )
        )
    out.append("")
    out.append(
        "Latency (open loop, counted from each request's scheduled send time). Each server's "
        "run with the median p99 is shown; every run's p99 is beside it:"
    )
    out.append("")
    out.append(
        "| load | processor | server | sent | measured | p50 ms | p90 ms | p99 ms | "
        "every run's p99 ms | p99.9 ms | max ms | server CPU s per 1,000 msgs | "
        "client CPU s / wall s |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in service["latency"]:
        for name in ("echo", "service"):
            r = row[name]
            every = ", ".join(_num(p, 1) for p in r.get("all_p99_ms", [r["p99_ms"]]))
            out.append(
                f"| {row['load']} | {row['processor']} | {name} | {r['sent']:,} | "
                f"{r['measured']:,} | {_num(r['p50_ms'], 1)} | {_num(r['p90_ms'], 1)} | "
                f"{_num(r['p99_ms'], 1)} | {every} | {_num(r['p999_ms'], 1)} | "
                f"{_num(r['max_ms'], 1)} | "
                f"{_num(r['server_cpu_s_per_1000_msgs'], 3)} | "
                f"{_num(r['client_cpu_s'], 1)} / {_num(r['wall_s'], 1)} |"
            )
        echo_p99, svc_p99 = row["echo"]["p99_ms"], row["service"]["p99_ms"]
        goals.append(
            (
                f"p99 ≤ {P99_RATIO_GOAL:.0f}× echo p99: {row['processor']}",
                f"{_num(svc_p99, 1)} ms vs {_num(echo_p99, 1)} ms",
                svc_p99 <= P99_RATIO_GOAL * echo_p99,
            )
        )
        goals.append(
            (
                f"p99 < {P99_LIMIT_MS:.0f} ms: {row['processor']}",
                f"{_num(svc_p99, 1)} ms",
                svc_p99 < P99_LIMIT_MS,
            )
        )
    out.append("")
    memory = service.get("final_memory", {})
    if memory:
        out.append(
            "Resident memory at the end of the bench: "
            + "; ".join(
                f"{name} {_num(m['rss_mib'], 1)} MiB (peak {_num(m['peak_rss_mib'], 1)} MiB)"
                for name, m in memory.items()
            )
            + "."
        )
        out.append("")
    out += _profiles(service.get("profiles", {}))
    return out


def _profiles(profiles: dict) -> list[str]:
    out = ["### Where the service's time goes", ""]
    if "error" in profiles:
        return out + [profiles["error"], ""]
    out.append(
        "py-spy (native frames included) on the service process during a closed-loop run. "
        "Each busy sample goes to the bucket of the frame nearest the leaf that has one "
        "(`bench/profile.py`): self share. Inclusive share: the bucket is anywhere on the "
        "stack (everything runs under the event loop and grpc's callbacks, so those two are "
        "near 100% inclusive and say little)."
    )
    out.append("")
    for processor, summary in profiles.items():
        if "error" in summary:
            out += [f"`{processor}`: {summary['error']}", ""]
            continue
        out.append(
            f"`{processor}` processor, {summary['load']}: {summary['samples']:,} samples, "
            f"{summary['busy_samples']:,} busy (the rest waiting for work), "
            f"{_num(summary['msgs_per_s_while_profiled'], 0)} msgs/s while profiled "
            "(py-spy pauses the process to read native stacks, so this is below the "
            "unprofiled rate):"
        )
        out.append("")
        out.append("| bucket | self share | inclusive share |")
        out.append("|---|---|---|")
        inclusive = dict(summary["inclusive_buckets"])
        for bucket, share in summary["buckets"]:
            out.append(f"| {bucket} | {share:.1%} | {inclusive.get(bucket, 0):.1%} |")
        out.append("")
        out.append(
            "Hottest functions: by self time (the innermost Python frame, whatever C code "
            "it is in), and the chunkwise functions (server/) by inclusive time:"
        )
        out.append("")
        out.append("| function | self | | chunkwise function | inclusive |")
        out.append("|---|---|---|---|---|")
        for (self_name, self_share), (inc_name, inc_share) in zip(
            summary["top_self"], summary["top_inclusive"], strict=False
        ):
            out.append(f"| `{self_name}` | {self_share:.1%} | | `{inc_name}` | {inc_share:.1%} |")
        out.append("")
    return out
