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


def van_der_corput(k: int) -> float:
    """The k-th point (k >= 1) of the base-2 van der Corput sequence: 1/2, 1/4, 3/4, 1/8,
    5/8, ... Any first n points are spread evenly over (0, 1), so sampling can stop at any
    time and still cover the whole text."""
    value, denominator = 0.0, 1.0
    while k:
        denominator *= 2
        k, bit = divmod(k, 2)
        value += bit / denominator
    return value


def sampled_prefix_costs(
    parse_prefix: Callable[[str], Any],
    text: str,
    samples: int,
    *,
    budget_s: float = float("inf"),
    repeat_below_s: float = 0.05,
    repeats: int = 3,
) -> list[float]:
    """Seconds to parse prefixes of `text` at evenly spread lengths: up to `samples` of
    them, fewer if `budget_s` runs out first (at least one). A parse shorter than
    `repeat_below_s` is repeated and its fastest time kept, since a shared machine only
    ever adds time."""
    perf = time.perf_counter
    costs: list[float] = []
    started = perf()
    for k in range(1, samples + 1):
        if costs and perf() - started > budget_s:
            break
        prefix = text[: max(1, round(van_der_corput(k) * len(text)))]
        best = float("inf")
        for attempt in range(repeats):
            t0 = perf()
            parse_prefix(prefix)
            elapsed = perf() - t0
            best = min(best, elapsed)
            if attempt == 0 and elapsed >= repeat_below_s:
                break
        costs.append(best)
    return costs


def estimate_reparse_total(costs: Sequence[float], n_chunks: int) -> float:
    """A re-parser's work on a chunk depends only on the prefix it re-reads, and chunk ends
    are spread evenly over the text, so the whole run costs about n_chunks times the mean
    cost of evenly spaced prefixes."""
    return n_chunks * sum(costs) / len(costs)
