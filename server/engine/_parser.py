"""StreamingParser: the one object a servicer talks to.

It checks a request, finds or makes the id's state, and under that id's lock runs the
tracker and the processor. Every refusal is an EngineError returned in the result, and a
refused request changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ._errors import (
    EngineError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProcessorFailed,
    ResourceExhausted,
)
from ._limits import Limits
from ._outputs import freeze, thaw
from ._registry import describe, load_processors
from ._results import ChunkResult, TextInfo, response_size
from ._store import (
    RECENT_RESPONSE_BYTES,
    Finished,
    IdState,
    Key,
    MemoryStore,
    kept_bytes,
)
from ._tracker import DeltaMode, Tracker

_MODE_NAMES = ", ".join(f"{m.value} ({m.name})" for m in DeltaMode)
_MODE_NUMBERS = frozenset(m.value for m in DeltaMode)
_EXPIRY_BATCH = 1000

#: The most a processor's `held_bytes` grows by for a chunk of n characters: its own
#: `growth_bound(chunk)` where it has one (the built-ins do, and tests/test_engine_bounds.py
#: holds them to it), else PROCESSOR_GROWTH_PER_CHAR * n + PROCESSOR_GROWTH_BASE.
PROCESSOR_GROWTH_PER_CHAR = 256
PROCESSOR_GROWTH_BASE = (2 << 20) + (64 << 10)
#: A response to a chunk of n characters with output is at most RESPONSE_PER_CHAR * n +
#: RESPONSE_BASE bytes plus a number the chunk ends (at most the text): the delta, values,
#: the framing of at most n + 2 JSON ops, and paths within the JSON reader's per-chunk path
#: budget (8 characters a character, 512 Ki more) at up to 4 bytes a character. Chunks
#: whose bound could pass --max-response-bytes are measured instead.
RESPONSE_PER_CHAR = 64
RESPONSE_BASE = (2 << 20) + (8 << 10)
#: A kept response of the text processor beyond 4 bytes a character of its delta: its
#: tuple of four (72 bytes) and the delta's str header (at most 80 bytes, with 4-byte
#: characters and its terminator).
_TEXT_KEPT_OVERHEAD = 160


class StreamingParser:
    """Tracks text per chunk id and runs each id's processor over it.

    Thread-safe: calls on different ids run in parallel, calls on one id one at a time.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._store = MemoryStore(self.limits)
        self._factories = load_processors()
        # Chunks longer than this are measured for the response limit (see RESPONSE_*).
        spare = self.limits.max_response_bytes - self.limits.max_text_bytes - RESPONSE_BASE
        self._measure_from = max(0, spare // RESPONSE_PER_CHAR)

    def process(
        self,
        chunk_id: str,
        chunk: str,
        *,
        processor_type: str = "",
        mode: int = 0,
        final: bool = False,
        sequence: int = 0,
        namespace: str = "",
        wait: bool = True,
    ) -> ChunkResult | None:
        """Apply one chunk; never raises an EngineError: a refusal comes back as
        `ChunkResult.error`. `mode` is the proto DeltaMode number (0 = unspecified).
        Ids live per `namespace` (a tenant): the same id in two namespaces is two ids.

        With `wait=False` it returns None, having done nothing, when another call holds
        the id: an event loop then hands the request to a thread rather than wait."""
        try:
            self._check_request(chunk_id, chunk, processor_type, mode)
            key = (namespace, chunk_id)
            while True:
                entry = self._store.open(key, sequence, self._clock())
                if isinstance(entry, Finished):
                    return _finished_duplicate(chunk_id, sequence, final, entry)
                lock = entry.lock
                # acquire/release, not `with`: see MemoryStore.open.
                if not lock.acquire(wait):
                    return None
                try:
                    if entry.alive:
                        return self._apply(key, entry, chunk, processor_type, mode, final, sequence)
                finally:
                    lock.release()
        except EngineError as exc:
            return ChunkResult(chunk_id=chunk_id, sequence=sequence, error=exc)

    def complete_text(self, chunk_id: str, *, namespace: str = "") -> TextInfo:
        """Raises InvalidArgument for a bad id, NotFound for an untracked one. Waits for a
        chunk of the id in flight, and decodes the whole text: call it off the event loop."""
        self._check_id(chunk_id)
        state = self._store.live((namespace, chunk_id))
        if state is not None:
            with state.lock:
                if state.alive and state.applied:
                    return TextInfo(state.tracker.text, state.last_sequence, state.processor_type)
        raise NotFound(f"chunk id {chunk_id!r} is not tracked")

    def clear(self, chunk_id: str, *, namespace: str = "") -> bool:
        """Forget the id; False when nothing was tracked. Raises InvalidArgument for a bad id.
        A chunk of the id in flight finishes as if it had come first."""
        self._check_id(chunk_id)
        return self._store.remove((namespace, chunk_id))

    def processors(self) -> list[tuple[str, str]]:
        """(name, description) of every processor, sorted by name."""
        return sorted((name, describe(factory)) for name, factory in self._factories.items())

    def expire(self) -> int:
        """Forget ids idle past the TTL; returns how many. Call it every second or so.
        The store is locked for a batch at a time, never for the whole sweep."""
        now = self._clock()
        expired = batch = self._store.expire(now, _EXPIRY_BATCH)
        while batch == _EXPIRY_BATCH:
            batch = self._store.expire(now, _EXPIRY_BATCH)
            expired += batch
        return expired

    @property
    def store(self) -> MemoryStore:
        return self._store

    # -- one request -----------------------------------------------------------------------

    def _check_id(self, chunk_id: str) -> None:
        if not chunk_id:
            raise InvalidArgument("chunk_id is empty")
        limit = self.limits.max_id_bytes
        if len(chunk_id) * 4 > limit and (size := len(chunk_id.encode())) > limit:
            raise InvalidArgument(f"chunk_id is {size} bytes, over the limit of {limit} bytes")

    def _check_request(self, chunk_id: str, chunk: str, processor_type: str, mode: int) -> None:
        self._check_id(chunk_id)
        if mode and mode not in _MODE_NUMBERS:
            raise InvalidArgument(f"unknown delta mode {mode}; known: {_MODE_NAMES}")
        if processor_type and processor_type not in self._factories:
            known = ", ".join(sorted(self._factories))
            raise InvalidArgument(f"unknown processor {processor_type!r}; known: {known}")
        limit = self.limits.max_chunk_bytes
        if len(chunk) * 4 > limit and (size := len(chunk.encode())) > limit:
            raise ResourceExhausted(f"chunk is {size} bytes, over the limit of {limit} bytes")

    def _apply(
        self,
        key: Key,
        state: IdState,
        chunk: str,
        processor_type: str,
        mode: int,
        final: bool,
        sequence: int,
    ) -> ChunkResult:
        if not state.applied:
            self._start(state, key[1], processor_type, mode)
        else:
            if (processor_type and processor_type != state.processor_type) or (
                mode and mode != state.mode
            ):
                raise _changed(state, processor_type, mode)
            if sequence and sequence <= state.last_sequence:
                return _live_duplicate(key[1], sequence, state)
        # The most the id's charged memory can grow by: see MemoryStore.
        tracker = state.tracker
        reserved = tracker.growth_bound(chunk)
        if not state.applied:
            reserved += state.held_bytes()  # a new id is charged all it holds
        if state.processor is None:
            if sequence:
                reserved += _TEXT_KEPT_OVERHEAD + 4 * len(chunk)
        else:
            growth_bound = getattr(state.processor, "growth_bound", None)
            if growth_bound is not None:
                reserved += growth_bound(chunk)
            else:
                reserved += PROCESSOR_GROWTH_PER_CHAR * len(chunk) + PROCESSOR_GROWTH_BASE
            if sequence:
                reserved += RECENT_RESPONSE_BYTES
        store = self._store
        store.reserve(key, state, reserved)
        try:
            return self._apply_reserved(key, state, tracker, chunk, final, sequence)
        finally:
            store.settle(state, reserved)

    def _apply_reserved(
        self, key: Key, state: IdState, tracker: Tracker, chunk: str, final: bool, sequence: int
    ) -> ChunkResult:
        chunk_id = key[1]
        applied = state.applied
        mark = tracker.mark() if final else None
        try:
            delta, reset = tracker.add(chunk, max_text_bytes=self.limits.max_text_bytes)
        except EngineError:
            if not applied:
                self._store.discard(key, state)
            raise
        processor = state.processor
        failed = state.failed
        if reset:
            processor = self._new_processor(state.processor_type, chunk_id)
            failed = False
        output = error = None
        if processor is not None and (delta or final) and not failed:
            try:
                output = processor.process(delta, final=final, complete_text=lambda: tracker.text)
            except InvalidArgument as exc:
                failed = True
                # Its traceback would keep the chunk alive, uncounted, as long as the id.
                error = exc.with_traceback(None)
            except Exception as exc:
                # A bug in the processor: its state is suspect, the text is not.
                failed = True
                error = ProcessorFailed(
                    "the id's processor failed; the server log has the details. "
                    "The text is tracked; the processor shows nothing more for this id"
                )
                error.__cause__ = exc
        if final:
            result = ChunkResult(
                chunk_id, sequence, delta, output, error, True, tracker.text, reset
            )
            size = response_size(result)
            if size > self.limits.max_response_bytes:
                tracker.restore(mark)
                if not applied:
                    self._store.discard(key, state)
                elif processor is state.processor and processor is not None and not state.failed:
                    # The final was read into the id's own processor: read the text again.
                    state.processor, state.failed = self._rebuilt(state, chunk_id)
                raise ResourceExhausted(
                    f"the final response would be {size} bytes, over the limit of "
                    f"{self.limits.max_response_bytes} bytes (--max-response-bytes); "
                    "nothing changed: read the text with GetCompleteText, then clear the id"
                )
        elif output is not None and len(chunk) > self._measure_from:
            result = ChunkResult(chunk_id, sequence, delta, output, error, False, "", reset)
            size = response_size(result)
            if size > self.limits.max_response_bytes:
                # Shown in part, it could not be rebuilt: the processor stops, as for text
                # that cannot be read.
                output, failed = None, True
                error = InvalidArgument(
                    f"this chunk's output would be {size} bytes, over the limit of "
                    f"{self.limits.max_response_bytes} bytes (--max-response-bytes); "
                    "no more output for this id"
                )
        # A stopped processor is never called again: what it holds is let go.
        state.processor = None if failed else processor
        state.failed = failed
        if sequence:
            state.last_sequence = sequence
        if not applied:
            state.applied = True
            self._store.admit(key, state)
        # Positional: with keywords this costs twice as much, once per chunk.
        if final:
            kept = (sequence, delta, reset, result.complete_text) + freeze(output)
            self._store.finish(key, state, kept, kept_bytes(kept), self._clock())
            return result
        result = ChunkResult(chunk_id, sequence, delta, output, error, False, "", reset)
        if sequence:
            state.remember(result)
        return result

    def _start(self, state: IdState, chunk_id: str, processor_type: str, mode: int) -> None:
        processor_type = processor_type or "text"
        state.processor = self._new_processor(processor_type, chunk_id)
        state.processor_type = processor_type
        state.mode = DeltaMode(mode or DeltaMode.AUTO)
        state.tracker = Tracker(state.mode)

    def _new_processor(self, processor_type: str, chunk_id: str):
        """The id's processor, or None for one that outputs nothing (see _processors)."""
        factory = self._factories[processor_type]
        if not getattr(factory, "reads_text", True):
            return None
        return factory(chunk_id, max_json_depth=self.limits.max_json_depth)

    def _rebuilt(self, state: IdState, chunk_id: str):
        """(processor, failed) as they were before the final reached the id's processor:
        rebuilt from the tracked text, as any store could."""
        processor = self._new_processor(state.processor_type, chunk_id)
        text = state.tracker.text
        try:
            if text:
                processor.process(text, final=False, complete_text=lambda: text)
        except InvalidArgument:
            return processor, True
        return processor, False


def _changed(state: IdState, processor_type: str, mode: int) -> FailedPrecondition:
    if processor_type and processor_type != state.processor_type:
        return FailedPrecondition(
            f"chunk id uses processor {state.processor_type!r}, not {processor_type!r}; "
            "clear it or use another id"
        )
    return FailedPrecondition(
        f"chunk id uses mode {state.mode.name}, not {DeltaMode(mode).name}; "
        "clear it or use another id"
    )


def _live_duplicate(chunk_id: str, sequence: int, state: IdState) -> ChunkResult:
    first = state.recall(sequence)
    if first is None:
        return ChunkResult(chunk_id=chunk_id, sequence=sequence, duplicate=True)
    delta, output, reset = first
    return ChunkResult(
        chunk_id=chunk_id,
        sequence=sequence,
        delta=delta,
        output=output,
        reset=reset,
        duplicate=True,
    )


def _finished_duplicate(
    chunk_id: str, sequence: int, final: bool, finished: Finished
) -> ChunkResult:
    # finished.final: (sequence, delta, reset, complete_text, *frozen output)
    known = finished.final
    if known is not None and known[0] == sequence:
        return ChunkResult(
            chunk_id=chunk_id,
            sequence=sequence,
            delta=known[1],
            output=thaw(known[4:]),
            final=True,
            complete_text=known[3],
            reset=known[2],
            duplicate=True,
        )
    return ChunkResult(
        chunk_id=chunk_id,
        sequence=sequence,
        final=final,
        complete_text=known[3] if final and known is not None else "",
        duplicate=True,
    )
