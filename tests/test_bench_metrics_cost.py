"""bench/metrics_cost.py reports what it measured: each round's ratio, the median pair, the
lowest median; and its scraper really scrapes."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from grpc_server import TIMEOUT, InProcessServer

from bench import metrics_cost


def test_the_report_gives_each_rounds_ratio_and_the_lowest_median() -> None:
    rows = [
        {
            "load": "1 stream",
            "processor": "text",
            "off_msgs_per_s": [1000.0, 1000.0, 1000.0],
            "on_msgs_per_s": [900.0, 950.0, 1000.0],
            "ratios": [0.9, 0.95, 1.0],
            "median_ratio": 0.95,
        },
        {
            "load": "100 streams",
            "processor": "json",
            "off_msgs_per_s": [2000.0],
            "on_msgs_per_s": [1850.0],
            "ratios": [0.925],
            "median_ratio": 0.925,
        },
    ]
    args = argparse.Namespace(rounds=3, duration=6.0, warmup=2.0, scrape_every=1.0)
    report = metrics_cost.render({"rows": rows, "scrapes": 7, "counting_ns": 512.0}, args)
    assert "| 1 stream | text | 1,000, 1,000, 1,000 | 900, 950, 1,000 |" in report
    assert "90.0%, 95.0%, 100.0% | **95.0%** |" in report
    assert "Lowest median: 92.5% (goal ≥ 90%)" in report
    assert "(7 scrapes)" in report
    assert "512 ns a chunk" in report


def test_the_scraper_scrapes_until_stopped(
    server_factory: Callable[..., InProcessServer],
) -> None:
    port = server_factory(metrics_port=0).server.metrics_port
    assert port is not None
    scraper = metrics_cost.Scraper(port, every=0.01)
    scraper.start()
    deadline = time.monotonic() + TIMEOUT
    while scraper.scrapes < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    scraper.stop()
    done = scraper.scrapes
    assert done >= 3
    assert scraper.scrapes == done


def test_counting_a_chunk_takes_microseconds_not_milliseconds() -> None:
    assert 0 < metrics_cost.counting_ns() < 100_000
