"""Where per-id state lives: in this process's memory.

Keys are (namespace, chunk_id). The store's lock is held only for dictionary work, never
while a chunk is parsed: each id's state has its own lock (``IdState.lock``), so different
ids progress in parallel. Everything an id holds can be rebuilt from its tracked text, its
mode, processor name and last sequence, which is what a shared store would keep.

Expiry: ``_live`` and ``_finished`` are ordered by last touch, oldest first, so a sweep
pops from the front and stops at the first id still fresh: its cost grows with what
expires, not with what is tracked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ._errors import ResourceExhausted
from ._outputs import Output, freeze, thaw
from ._results import ChunkResult
from ._tracker import DeltaMode, Tracker

Key = tuple[str, str]

# How many recent responses of an id are kept to answer duplicates, and the largest delta
# kept: a duplicate of an older or larger one gets an empty delta, as the contract allows.
RECENT_RESPONSES = 8
RECENT_DELTA_CHARS = 64 * 1024
# Final responses remembered for duplicates of a final, in all: older ones are dropped
# first (their sequences stay remembered).
FINAL_CACHE_CHARS = 32 * 1024 * 1024


class IdState:
    """One tracked id. Read and change it only while holding `lock`."""

    __slots__ = (
        "lock",
        "alive",
        "applied",
        "touched",
        "processor_type",
        "mode",
        "tracker",
        "processor",
        "failed",
        "last_sequence",
        "recent",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.alive = True  # False once removed from the store: callers look it up again
        self.applied = False  # False until a first request is applied
        self.touched = 0.0
        self.processor_type = ""
        self.mode = DeltaMode.AUTO
        self.tracker: Tracker | None = None
        self.processor = None
        self.failed = False  # the text cannot be read: no more output, no more errors
        self.last_sequence = 0
        # (sequence, delta, reset, *frozen output): see _outputs.freeze for why this form.
        self.recent: deque[tuple] = deque(maxlen=RECENT_RESPONSES)

    def remember(self, result: ChunkResult) -> None:
        if result.sequence and len(result.delta) <= RECENT_DELTA_CHARS:
            entry = (result.sequence, result.delta, result.reset)
            output = result.output
            self.recent.append(entry if output is None else entry + freeze(output))

    def recall(self, sequence: int) -> tuple[str, Output | None, bool] | None:
        """(delta, output, reset) of the first response to `sequence`, when still known."""
        for entry in self.recent:
            if entry[0] == sequence:
                return entry[1], thaw(entry[3:]), entry[2]
        return None


@dataclass(slots=True)
class Finished:
    """What is remembered of an id after its final chunk."""

    last_sequence: int
    finished_at: float
    final: ChunkResult | None = field(default=None)


class MemoryStore:
    def __init__(self, *, max_ids: int, idle_ttl: float) -> None:
        self._max_ids = max_ids
        self._idle_ttl = idle_ttl
        self._lock = threading.Lock()
        self._live: OrderedDict[Key, IdState] = OrderedDict()
        self._finished: OrderedDict[Key, Finished] = OrderedDict()
        self._final_results: OrderedDict[Key, int] = OrderedDict()  # key -> cached chars
        self._final_chars = 0

    def open(self, key: Key, sequence: int, now: float) -> IdState | Finished:
        """The live state of `key`, touched; or, for a duplicate of a finished id, its
        record; or a new state, which `admit` makes count once its first request is
        applied. Raises ResourceExhausted when no id can be added."""
        # acquire/release, not `with`: once per chunk, and `with` costs twice as much.
        lock = self._lock
        lock.acquire()
        try:
            state = self._live.get(key)
            if state is not None:
                state.touched = now
                self._live.move_to_end(key)
                return state
            finished = self._finished.get(key)
            if finished is not None and 0 < sequence <= finished.last_sequence:
                return finished
            # Finished ids make room in admit(), not here: a refused first request must
            # drop nothing. Only live ids can leave no room at all.
            if len(self._live) >= self._max_ids:
                raise ResourceExhausted(
                    f"{len(self._live)} ids are tracked, the limit; finish or clear some first"
                )
            state = IdState()
            state.touched = now
            self._live[key] = state
            return state
        finally:
            lock.release()

    def admit(self, key: Key) -> None:
        """A new id's first request was applied: it replaces what was remembered of a
        finished id of that name, and the ids finished earliest make room for it."""
        with self._lock:
            if key in self._finished:
                self._forget_finished(key)
            while self._finished and len(self._live) + len(self._finished) > self._max_ids:
                self._forget_finished(next(iter(self._finished)))

    def live(self, key: Key) -> IdState | None:
        """The live state, not touched: reading does not keep an id alive."""
        with self._lock:
            return self._live.get(key)

    def discard(self, key: Key, state: IdState) -> None:
        """Remove a state whose first request was refused."""
        with self._lock:
            if self._live.get(key) is state:
                del self._live[key]
        state.alive = False

    def finish(self, key: Key, state: IdState, final: ChunkResult, now: float) -> None:
        with self._lock:
            if self._live.get(key) is state:
                del self._live[key]
            state.alive = False
            if not state.last_sequence:
                return
            self._finished[key] = Finished(state.last_sequence, now)
            size = len(final.complete_text) + len(final.delta)
            if final.sequence and size <= FINAL_CACHE_CHARS // 64:
                self._finished[key].final = final
                self._final_results[key] = size
                self._final_chars += size
                while self._final_chars > FINAL_CACHE_CHARS:
                    old, old_size = self._final_results.popitem(last=False)
                    self._final_chars -= old_size
                    self._finished[old].final = None

    def remove(self, key: Key) -> bool:
        """Forget everything about `key`; True when it was live."""
        with self._lock:
            state = self._live.pop(key, None)
            if key in self._finished:
                self._forget_finished(key)
        if state is None:
            return False
        state.alive = False
        return True

    def expire(self, now: float) -> int:
        deadline = now - self._idle_ttl
        expired = 0
        with self._lock:
            while self._live:
                key, state = next(iter(self._live.items()))
                if state.touched > deadline:
                    break
                del self._live[key]
                state.alive = False
                expired += 1
            while self._finished:
                key, finished = next(iter(self._finished.items()))
                if finished.finished_at > deadline:
                    break
                self._forget_finished(key)
                expired += 1
        return expired

    def _forget_finished(self, key: Key) -> None:
        del self._finished[key]
        size = self._final_results.pop(key, None)
        if size is not None:
            self._final_chars -= size
