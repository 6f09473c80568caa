"""Turning batch timings into the figures: per-chunk time, flatness, sampled estimates."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any


def fastest_per_batch(runs: Sequence[Sequence[float]]) -> list[float]:
    """Element-wise minimum over repeated runs of the same batches. A shared 2-core machine
    only ever adds time, so the fastest of each batch is the least disturbed reading."""
    return [min(column) for column in zip(*runs, strict=True)]


def batch_sizes(n_chunks: int, batch: int) -> list[int]:
    return [min(batch, n_chunks - start) for start in range(0, n_chunks, batch)]


def flatness(batches: Sequence[float], batch: int, n_chunks: int) -> float:
    """Mean per-chunk time over the batches in the last 10% of the chunks divided by the
    same over the first 10%. A cost that grows with the text so far shows up as > 1."""
    sizes = batch_sizes(n_chunks, batch)
    if len(sizes) != len(batches):
        raise ValueError("one timing per batch expected")
    starts = range(0, n_chunks, batch)
    head = [(t, n) for t, n, s in zip(batches, sizes, starts, strict=True) if s < n_chunks * 0.1]
    tail = [(t, n) for t, n, s in zip(batches, sizes, starts, strict=True) if s >= n_chunks * 0.9]
    if not head or not tail:
        raise ValueError("too few batches for a flatness figure")
    head_mean = sum(t for t, _ in head) / sum(n for _, n in head)
    tail_mean = sum(t for t, _ in tail) / sum(n for _, n in tail)
    return tail_mean / head_mean


def sampled_prefix_costs(
    parse_prefix: Callable[[str], Any], text: str, samples: int
) -> list[float]:
    """Seconds to parse `samples` prefixes at evenly spaced lengths (the middle of each of
    `samples` equal slices of the text)."""
    perf = time.perf_counter
    costs = []
    for j in range(samples):
        prefix = text[: max(1, int((j + 0.5) * len(text) / samples))]
        t0 = perf()
        parse_prefix(prefix)
        costs.append(perf() - t0)
    return costs


def estimate_reparse_total(costs: Sequence[float], n_chunks: int) -> float:
    """A re-parser's work on a chunk depends only on the prefix it re-reads, and chunk ends
    are spread evenly over the text, so the whole run costs about n_chunks times the mean
    cost of evenly spaced prefixes."""
    return n_chunks * sum(costs) / len(costs)
