"""Streams: every tracked id's session, kept in a store; the one object a servicer calls.

It checks a request, finds or makes the id's state in the store, and under that id's lock
reserves memory, feeds the chunk to the id's Session, encodes the response and settles.
Every refusal is an EngineError returned in the result, and a refused request changes
nothing. The encoded responses to numbered chunks are kept for their duplicates, which get
those very bytes, marked as duplicates; a session is dropped once its final is applied, and
the store remembers its last sequence (and, room permitting, its final response).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from chunkwise.v1 import streaming_pb2 as pb

from server._wire import as_duplicate, chunk_response, response_size
from server.engine import (
    ChunkResult,
    EngineError,
    InvalidArgument,
    Limits,
    Mode,
    NotFound,
    ProcessorFactory,
    ResourceExhausted,
    Session,
    TextInfo,
)
from server.plugins import describe, load_processors
from server.store import RECENT_RESPONSE_BYTES, Finished, IdState, Key, MemoryStore, Store

_EXPIRY_BATCH = 1000
#: A kept response of the text processor beyond 4 bytes a character of its delta: its
#: entry and header (KEPT_OVERHEAD, 89 bytes), the id (at most --max-id-bytes) and the
#: framing of three fields (at most 6 + 11 + 6 bytes).
_TEXT_KEPT_OVERHEAD = 128


class Answer(NamedTuple):
    """A chunk's result, its encoded ProcessChunksResponse, and the id's session when the
    request reached it (None when it was refused before, or its id had finished)."""

    result: ChunkResult
    response: bytes
    session: Session | None


# An Answer made in C: a NamedTuple's own constructor is Python code, a microsecond once
# per chunk.
_new = tuple.__new__


class Streams:
    """Tracks text per (namespace, chunk id) and runs each id's session over it.

    Thread-safe: calls on different ids run in parallel, calls on one id one at a time.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        processors: Mapping[str, ProcessorFactory] | None = None,
        clock: Callable[[], float] = time.monotonic,
        encode: Callable[[ChunkResult], bytes] = chunk_response,
        measure: Callable[[ChunkResult], int] = response_size,
        store: Store | None = None,
    ) -> None:
        """`encode` makes a result's response; `measure` tells its size without making it.
        The store is a MemoryStore of `limits` unless one is given."""
        self.limits = limits or Limits()
        self._clock = clock
        self._encode = encode
        self._measure = measure
        self._store: Store = store if store is not None else MemoryStore(self.limits)
        self._factories = dict(load_processors() if processors is None else processors)

    def answer(
        self,
        chunk_id: str,
        chunk: str,
        *,
        processor_type: str = "",
        mode: Mode | None = None,
        final: bool = False,
        sequence: int = 0,
        namespace: str = "",
        wait: bool = True,
    ) -> Answer | None:
        """Apply one chunk, and encode its response; never raises an EngineError: a refusal
        comes back as `ChunkResult.error`. `mode` None means the id's own (AUTO for a new id).
        Ids live per `namespace` (a tenant): the same id in two namespaces is two ids.

        With `wait=False` it returns None, having done nothing, when another call holds
        the id: an event loop then hands the request to a thread rather than wait."""
        entry: IdState | Finished | None = None
        try:
            self._check_request(chunk_id, chunk, processor_type)
            key = (namespace, chunk_id)
            while True:
                entry = self._store.open(key, sequence, self._clock())
                if isinstance(entry, Finished):
                    return self._finished_duplicate(chunk_id, sequence, final, entry)
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
            result = ChunkResult(chunk_id=chunk_id, sequence=sequence, error=exc)
            # The id's session, for what the answer reports of the id: read without its
            # lock, as its processor and mode never change.
            session = entry.session if isinstance(entry, IdState) else None
            return _new(Answer, (result, self._encode(result), session))

    def process(self, chunk_id: str, chunk: str, **options: Any) -> ChunkResult | None:
        """`answer()`'s result alone, for the same arguments. A duplicate's result has no
        delta or output: its response carries the first ones."""
        answer = self.answer(chunk_id, chunk, **options)
        return None if answer is None else answer.result

    def complete_text(self, chunk_id: str, *, namespace: str = "") -> TextInfo:
        """Raises InvalidArgument for a bad id, NotFound for an untracked one. Waits for a
        chunk of the id in flight, and copies the whole text: call it off the event loop."""
        self._check_id(chunk_id)
        state = self._store.live((namespace, chunk_id))
        if state is not None:
            with state.lock:
                session = state.session
                if state.alive and state.applied and session is not None:
                    return TextInfo(
                        session.text_utf8, session.last_sequence, session.processor_type
                    )
        raise NotFound(f"chunk id {chunk_id!r} is not tracked", subject=chunk_id)

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
    def store(self) -> Store:
        return self._store

    # -- one request -----------------------------------------------------------------------

    def _check_id(self, chunk_id: str) -> None:
        if not chunk_id:
            raise InvalidArgument("chunk_id is empty", subject="chunk_id")
        limit = self.limits.max_id_bytes
        if len(chunk_id) * 4 > limit and (size := len(chunk_id.encode())) > limit:
            raise InvalidArgument(
                f"chunk_id is {size} bytes, over the limit of {limit} bytes", subject="chunk_id"
            )

    def _check_request(self, chunk_id: str, chunk: str, processor_type: str) -> None:
        self._check_id(chunk_id)
        if processor_type and processor_type not in self._factories:
            known = ", ".join(sorted(self._factories))
            raise InvalidArgument(
                f"unknown processor {processor_type!r}; known: {known}", subject="processor_type"
            )
        limit = self.limits.max_chunk_bytes
        if len(chunk) * 4 > limit and (size := len(chunk.encode())) > limit:
            raise ResourceExhausted(
                f"chunk is {size} bytes, over the limit of {limit} bytes",
                subject="--max-chunk-bytes",
            )

    def _apply(
        self,
        key: Key,
        state: IdState,
        chunk: str,
        processor_type: str,
        mode: Mode | None,
        final: bool,
        sequence: int,
    ) -> Answer:
        session = state.session
        if session is None:
            processor_type = processor_type or "text"
            session = state.session = Session(
                key[1],
                processor_type=processor_type,
                factory=self._factories[processor_type],
                mode=mode or Mode.AUTO,
                limits=self.limits,
                response_size=self._measure,
            )
            # The most the id's charged memory can grow by: see MemoryStore. A new id is
            # charged all it holds.
            reserved = session.growth_bound(chunk) + state.held_bytes()
        else:
            session.check(processor_type, mode)
            if sequence and session.is_duplicate(sequence):
                return self._live_duplicate(key[1], sequence, state)
            reserved = session.growth_bound(chunk)
        if sequence:
            if session.processor is None:
                reserved += _TEXT_KEPT_OVERHEAD + self.limits.max_id_bytes + 4 * len(chunk)
            else:
                reserved += RECENT_RESPONSE_BYTES
        store = self._store
        store.reserve(key, state, reserved)
        try:
            try:
                result = session.feed(chunk, final=final, sequence=sequence)
            except EngineError:
                if not state.applied:
                    store.discard(key, state)
                raise
            if not state.applied:
                state.applied = True
                store.admit(key, state)
            response = self._encode(result)
            if final:
                store.finish(key, state, (sequence, as_duplicate(response)), self._clock())
            elif sequence:
                state.remember(sequence, as_duplicate(response))
            return _new(Answer, (result, response, session))
        finally:
            store.settle(state, reserved)

    def _encoded(self, result: ChunkResult) -> Answer:
        return _new(Answer, (result, self._encode(result), None))

    def _live_duplicate(self, chunk_id: str, sequence: int, state: IdState) -> Answer:
        result = ChunkResult(chunk_id=chunk_id, sequence=sequence, duplicate=True)
        kept = state.recall(sequence)
        if kept is None:
            return _new(Answer, (result, self._encode(result), state.session))
        return _new(Answer, (result, kept, state.session))

    def _finished_duplicate(
        self, chunk_id: str, sequence: int, final: bool, finished: Finished
    ) -> Answer:
        result = ChunkResult(chunk_id=chunk_id, sequence=sequence, duplicate=True)
        known = finished.final_answer
        if known is not None and known[0] == sequence:
            result.final = True
            return _new(Answer, (result, known[1], None))
        if final and known is not None:
            # A resent final of another number repeats the final's complete text: read
            # back from the kept response, which this rare case alone needs apart.
            result.final = True
            result.complete_text = pb.ProcessChunksResponse.FromString(known[1]).complete_text
        else:
            result.final = final
        return self._encoded(result)
