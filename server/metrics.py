"""The service's own Prometheus metrics: counted per chunk in plain integers, exposed at
scrape time.

A chunk costs a lock, a few dictionary and integer additions and a bisect; nothing here
builds a label set or a metric object until a scrape asks (`ServiceCollector.collect`).
Gauges of what the store holds are read from it at scrape time, so they cost nothing per
chunk.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Collection, Iterator

from chunkwise.v1 import streaming_pb2 as pb
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from server._convert import known_delta_mode
from server.store import Store
from server.streams import Answer

#: Upper bounds (seconds) of the engine-time histogram's buckets: a token-sized chunk takes
#: tens of microseconds, a megabyte of dense JSON about a second (bench/loop_latency.py).
ENGINE_SECONDS_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

#: The label of a processor or mode that a request's answer does not tell: the request was
#: refused before its id was found and named none that exists, or its id had finished.
UNKNOWN = "unknown"


class ServiceMetrics:
    """What ProcessChunks and expiry count. Thread-safe: chunks are answered on the event
    loop and on worker threads."""

    def __init__(self, processors: Collection[str]) -> None:
        self._processors = frozenset(processors)
        self._lock = threading.Lock()
        # (processor, mode, code) -> chunks
        self._chunks: dict[tuple[str, str, str], int] = {}
        # processor -> [chunks per bucket (not cumulative), chunks over the last bound,
        # total seconds]: one list, so a chunk costs one lookup.
        self._engine: dict[str, list[float]] = {}
        self.delta_bytes = 0
        self.duplicates = 0
        self.resets = 0
        self.ids_expired = 0
        self.streams_open = 0

    def chunk(self, request: pb.ProcessChunksRequest, answer: Answer, seconds: float) -> None:
        """One request answered by the store, in `seconds` of engine time."""
        result = answer.result
        session = answer.session
        if session is not None:
            processor, mode = session.processor_type, session.mode.name
        else:
            processor, mode = self._named(request)
        error = result.error
        code = "OK" if error is None else error.status_hint
        delta = result.delta
        lock = self._lock
        lock.acquire()
        try:
            key = (processor, mode, code)
            chunks = self._chunks
            chunks[key] = chunks.get(key, 0) + 1
            engine = self._engine.get(processor)
            if engine is None:
                engine = self._engine[processor] = [0] * (len(ENGINE_SECONDS_BUCKETS) + 2)
            engine[bisect_left(ENGINE_SECONDS_BUCKETS, seconds)] += 1
            engine[-1] += seconds
            if delta:
                # isascii() is O(1): only a non-ASCII delta is encoded to be measured.
                self.delta_bytes += len(delta) if delta.isascii() else len(delta.encode())
            if result.duplicate:
                self.duplicates += 1
            if result.reset:
                self.resets += 1
        finally:
            lock.release()

    def refused(self, request: pb.ProcessChunksRequest, code: str) -> None:
        """One request answered without the store: a delta mode outside the enum, or a bug."""
        processor, mode = self._named(request)
        with self._lock:
            key = (processor, mode, code)
            self._chunks[key] = self._chunks.get(key, 0) + 1

    def expired(self, ids: int) -> None:
        with self._lock:
            self.ids_expired += ids

    def stream_opened(self) -> None:
        with self._lock:
            self.streams_open += 1

    def stream_closed(self) -> None:
        with self._lock:
            self.streams_open -= 1

    def _named(self, request: pb.ProcessChunksRequest) -> tuple[str, str]:
        """The processor and mode a request names, when they exist: a label's values stay
        a known few whatever clients send."""
        processor = request.processor_type
        mode = known_delta_mode(request.mode)
        return (
            processor if processor in self._processors else UNKNOWN,
            UNKNOWN if mode is None else mode.name,
        )

    def snapshot(
        self,
    ) -> tuple[dict[tuple[str, str, str], int], dict[str, tuple[list[int], float]], list[int]]:
        """Copies of the counts, taken at one instant: chunks by labels, engine buckets and
        seconds by processor, and [delta bytes, duplicates, resets, expired, streams open]."""
        with self._lock:
            return (
                dict(self._chunks),
                {
                    processor: ([int(count) for count in engine[:-1]], engine[-1])
                    for processor, engine in self._engine.items()
                },
                [
                    self.delta_bytes,
                    self.duplicates,
                    self.resets,
                    self.ids_expired,
                    self.streams_open,
                ],
            )


class ServiceCollector:
    """A prometheus_client collector of a ServiceMetrics and the store it counts for."""

    def __init__(self, metrics: ServiceMetrics, store: Store, memory_budget: int) -> None:
        self._metrics = metrics
        self._store = store
        self._memory_budget = memory_budget

    def collect(self) -> Iterator[Metric]:
        chunks, engine, totals = self._metrics.snapshot()
        delta_bytes, duplicates, resets, ids_expired, streams_open = totals
        by_code = CounterMetricFamily(
            "chunkwise_chunks",
            "ProcessChunks requests answered, by the id's processor and delta mode and the "
            "response's error code (OK: none)",
            labels=("processor", "mode", "code"),
        )
        for labels, count in sorted(chunks.items()):
            by_code.add_metric(labels, count)
        yield by_code
        engine_time = HistogramMetricFamily(
            "chunkwise_chunk_engine_seconds",
            "Time spent answering one ProcessChunks request in the engine and store, by "
            "the id's processor",
            labels=("processor",),
        )
        for processor, (buckets, seconds) in sorted(engine.items()):
            cumulative = []
            count = 0
            for bound, chunks_in in zip(
                (*ENGINE_SECONDS_BUCKETS, float("inf")), buckets, strict=True
            ):
                count += chunks_in
                cumulative.append((_bound(bound), count))
            engine_time.add_metric((processor,), cumulative, seconds)
        yield engine_time
        yield CounterMetricFamily(
            "chunkwise_delta_bytes",
            "UTF-8 bytes of the deltas of ProcessChunks responses",
            value=delta_bytes,
        )
        ids, text_bytes = self._store.tracked()
        yield GaugeMetricFamily(
            "chunkwise_ids_tracked", "Chunk ids tracked now (live, not finished)", value=ids
        )
        yield GaugeMetricFamily(
            "chunkwise_bytes_tracked",
            "UTF-8 bytes of the complete texts of the ids tracked now",
            value=text_bytes,
        )
        yield GaugeMetricFamily(
            "chunkwise_memory_bytes",
            "Memory charged for every id now (texts, parser state, kept responses), as "
            "--max-memory-bytes counts it",
            value=self._store.memory,
        )
        yield GaugeMetricFamily(
            "chunkwise_memory_budget_bytes",
            "The memory budget for all ids, --max-memory-bytes",
            value=self._memory_budget,
        )
        yield CounterMetricFamily(
            "chunkwise_ids_expired",
            "Ids forgotten after --idle-ttl without a chunk (finished ids' remembered "
            "sequences included)",
            value=ids_expired,
        )
        yield CounterMetricFamily(
            "chunkwise_duplicates",
            "ProcessChunks requests answered as duplicates of one already applied",
            value=duplicates,
        )
        yield CounterMetricFamily(
            "chunkwise_resets",
            "SNAPSHOT-mode chunks that rewrote the text (responses with reset = true)",
            value=resets,
        )
        yield GaugeMetricFamily(
            "chunkwise_streams_open", "ProcessChunks streams open now", value=streams_open
        )


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
