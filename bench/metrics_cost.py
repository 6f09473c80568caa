"""`python -m bench.metrics_cost [--rounds N] [--quick]`: what `--metrics-port` costs.

Two `python -m server` processes run side by side for the whole bench, one with
`--metrics-port` and one without, on the same CPU (see service_bench.py); each load is run
against one and then the other, the order alternating round by round, so drift on a shared
machine hits both alike. While the metrics server is loaded, /metrics is scraped every
`--scrape-every` seconds, as Prometheus would (more often than its usual 15 s). The figure
is messages/s with metrics over messages/s without, for each pair of runs; the median pair
is reported with every pair's ratio. It also times `ServiceMetrics.chunk`, the per-chunk
counting, alone.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import timeit
import urllib.request

from chunkwise.v1 import streaming_pb2 as pb

from server.engine import Mode
from server.metrics import ServiceMetrics
from server.streams import Streams

from .service_bench import Load, ServerProcess, run_load

LOADS = (
    Load("1 stream, pipelined", "closed", streams=1, channels=1, window=16),
    Load("100 streams / 8 channels", "closed", streams=100, channels=8, window=4),
)
PROCESSORS = ("text", "json")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server(metrics_port: int | None, event_loop: str) -> ServerProcess:
    command = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0"]
    command += ["--max-ids", "1000000"]
    if metrics_port is None:
        return ServerProcess("metrics off", command, event_loop)
    return ServerProcess("metrics on", [*command, "--metrics-port", str(metrics_port)], event_loop)


class Scraper:
    """Scrapes /metrics every `every` seconds on a thread, between start() and stop()."""

    def __init__(self, port: int, every: float) -> None:
        self._url = f"http://127.0.0.1:{port}/metrics"
        self._every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.scrapes = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with urllib.request.urlopen(self._url, timeout=10) as reply:
                reply.read()
            self.scrapes += 1


def counting_ns() -> float:
    """Nanoseconds of one `ServiceMetrics.chunk` call, for an ordinary OK chunk."""
    metrics = ServiceMetrics(["text", "json"])
    answer = Streams().answer("id", '{"a": 1', processor_type="json", mode=Mode.APPEND)
    assert answer is not None and answer.session is not None
    request = pb.ProcessChunksRequest(chunk_id="id", chunk='{"a": 1')
    calls = 200_000
    seconds = min(timeit.repeat(lambda: metrics.chunk(request, answer, 3e-5), number=calls))
    return seconds / calls * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="runs per server and case")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--scrape-every", type=float, default=1.0)
    parser.add_argument("--event-loop", default="auto")
    parser.add_argument("--quick", action="store_true", help="1 round, short runs")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.duration = 1, 0.5, 2.0
    metrics_port = _free_port()
    servers = {
        "off": _server(None, args.event_loop),
        "on": _server(metrics_port, args.event_loop),
    }
    scraper = Scraper(metrics_port, args.scrape_every)
    rows = []
    try:
        for server in servers.values():
            server.start()
        for load in LOADS:
            for processor in PROCESSORS:
                runs: dict[str, list[float]] = {"off": [], "on": []}
                for round_ in range(args.rounds):
                    order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
                    for name in order:
                        if name == "on":
                            scraper.start()
                        try:
                            result = run_load(
                                servers[name], load, processor, args.warmup, args.duration
                            )
                        finally:
                            if name == "on":
                                scraper.stop()
                        runs[name].append(result["msgs_per_s"])
                ratios = [on / off for on, off in zip(runs["on"], runs["off"], strict=True)]
                rows.append(
                    {
                        "load": load.name,
                        "processor": processor,
                        "off_msgs_per_s": runs["off"],
                        "on_msgs_per_s": runs["on"],
                        "ratios": ratios,
                        "median_ratio": statistics.median(ratios),
                    }
                )
    finally:
        for server in servers.values():
            server.stop()
    results = {"rows": rows, "scrapes": scraper.scrapes, "counting_ns": counting_ns()}
    print(json.dumps(results, indent=2) if args.json else render(results, args))
    return 0


def render(results: dict, args: argparse.Namespace) -> str:
    lines = [
        f"{args.rounds} rounds of {args.duration:g} s (after {args.warmup:g} s of warm-up) per "
        f"server and case, alternating; /metrics scraped every {args.scrape_every:g} s "
        f"under load ({results['scrapes']} scrapes)",
        "",
        "| load | processor | msgs/s off | msgs/s on | on / off, each round | median |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        off = ", ".join(f"{v:,.0f}" for v in row["off_msgs_per_s"])
        on = ", ".join(f"{v:,.0f}" for v in row["on_msgs_per_s"])
        ratios = ", ".join(f"{r:.1%}" for r in row["ratios"])
        lines.append(
            f"| {row['load']} | {row['processor']} | {off} | {on} | {ratios} "
            f"| **{row['median_ratio']:.1%}** |"
        )
    every = [row["median_ratio"] for row in results["rows"]]
    lines += [
        "",
        f"Lowest median: {min(every):.1%} (goal ≥ 90%). "
        f"ServiceMetrics.chunk alone: {results['counting_ns']:.0f} ns a chunk.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
