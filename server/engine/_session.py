"""Session: one chunk id's state machine, from its first chunk to its final one.

Theory of operation
-------------------
A Session is in the shape of h11's ``Connection``: the caller pushes a chunk in with
``feed()`` and gets back what it adds. It does no I/O and knows nothing of other ids,
threads, clocks, namespaces or the wire. The server keeps one session per (namespace, id)
in its store, feeds it one chunk at a time, and turns each result into a response.

The rules a session keeps:

- Its processor and mode are fixed when it is made. ``check(processor_type, mode)`` raises
  FailedPrecondition for a request that names others; an empty name or None means "the
  id's own".
- ``sequence`` 0 is unnumbered and always applied. A numbered chunk is applied when its
  number is above ``last_sequence``; ``is_duplicate(sequence)`` says when it is not. A
  duplicate is never fed: the caller answers it from the first answer, which it keeps.
- ``feed()`` applies the chunk and returns its ChunkResult, or raises an EngineError having
  changed nothing: text past ``max_text_bytes``, or a final whose response would pass
  ``max_response_bytes`` (the text is put back, and a processor that read the final is
  rebuilt from the text).
- Text the processor cannot read (InvalidArgument) and a bug in the processor
  (ProcessorFailed) are reported in the result, beside the chunk's delta: the text is
  tracked, the processor is let go and shows nothing more. So is a non-final output too big
  for one response: shown in part, it could not be rebuilt.
- After a final chunk the session is ``finished``; the caller drops it.
- ``held_bytes`` is the memory the session holds; ``growth_bound(chunk)`` the most a feed of
  `chunk` can add to it, which the store reserves from its budget first.

Everything a session holds can be rebuilt from its text, mode, processor and last
sequence: a store shared by several servers keeps those and makes the session again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from ._errors import (
    EngineError,
    FailedPrecondition,
    InvalidArgument,
    ProcessorFailed,
    ResourceExhausted,
)
from ._limits import Limits
from ._outputs import Output
from ._processors import Processor, ProcessorFactory
from ._results import ChunkResult
from ._tracker import Mode, Tracker

#: The most a processor's `held_bytes` grows by for a chunk of n characters: its own
#: `growth_bound(chunk)` where it has one (the built-ins do, and tests/test_engine_bounds.py
#: holds them to it), else PROCESSOR_GROWTH_PER_CHAR * n + PROCESSOR_GROWTH_BASE.
PROCESSOR_GROWTH_PER_CHAR = 256
PROCESSOR_GROWTH_BASE = (2 << 20) + (64 << 10)
#: A response to a chunk of n characters with output is at most RESPONSE_PER_CHAR * n +
#: RESPONSE_BASE bytes plus a number the chunk ends (at most the text): the delta, values,
#: the framing of at most n + 2 JSON ops, and paths within the JSON reader's per-chunk path
#: budget (8 characters a character, 512 Ki more) at up to 4 bytes a character. Chunks
#: whose bound could pass max_response_bytes are measured instead.
RESPONSE_PER_CHAR = 64
RESPONSE_BASE = (2 << 20) + (8 << 10)


class Session:
    """One id's text, processor and sequence numbers. Not thread-safe: one feed at a time."""

    __slots__ = (
        "chunk_id",
        "processor_type",
        "mode",
        "last_sequence",
        "failed",
        "finished",
        "processor",
        "_tracker",
        "_factory",
        "_limits",
        "_response_size",
        "_measure_from",
    )

    def __init__(
        self,
        chunk_id: str,
        *,
        processor_type: str,
        factory: ProcessorFactory,
        mode: Mode,
        limits: Limits,
        response_size: Callable[[ChunkResult], int],
    ) -> None:
        """`response_size(result)` is the size of the response the caller would send for a
        result: the wire format is the caller's, the limit on it the session's."""
        self.chunk_id = chunk_id
        self.processor_type = processor_type
        self.mode = mode
        self.last_sequence = 0
        #: The text cannot be read: no more output, no more errors.
        self.failed = False
        self.finished = False
        self._factory = factory
        self._limits = limits
        self._response_size = response_size
        self._tracker = Tracker(mode)
        #: None for a processor that shows nothing (see _processors): never made or called.
        self.processor: Processor | None = self._new_processor()
        # Chunks longer than this are measured for the response limit (see RESPONSE_*).
        spare = limits.max_response_bytes - limits.max_text_bytes - RESPONSE_BASE
        self._measure_from = max(0, spare // RESPONSE_PER_CHAR)

    @property
    def text(self) -> str:
        """The whole text so far: O(its length)."""
        return self._tracker.text

    @property
    def text_utf8(self) -> bytes:
        """The whole text so far as UTF-8: O(its length)."""
        return self._tracker.text_utf8

    @property
    def text_bytes(self) -> int:
        """The UTF-8 size of the whole text so far (see Tracker.text_bytes)."""
        return self._tracker.text_bytes

    @property
    def held_bytes(self) -> int:
        """The memory the text and the processor hold, as the store charges it."""
        processor = self.processor
        held = self._tracker.held_bytes
        if processor is None:
            return held
        processor_held: int = getattr(processor, "held_bytes", 0)
        return held + processor_held

    def growth_bound(self, chunk: str) -> int:
        """The most `held_bytes` can grow by when `chunk` is fed, whatever it holds."""
        bound = self._tracker.growth_bound(chunk)
        processor = self.processor
        if processor is None:
            return bound
        growth_bound: Callable[[str], int] | None = getattr(processor, "growth_bound", None)
        if growth_bound is not None:
            return bound + growth_bound(chunk)
        return bound + PROCESSOR_GROWTH_PER_CHAR * len(chunk) + PROCESSOR_GROWTH_BASE

    def check(self, processor_type: str, mode: Mode | None) -> None:
        """Raises FailedPrecondition when a request names another processor or mode."""
        if processor_type and processor_type != self.processor_type:
            raise FailedPrecondition(
                f"chunk id uses processor {self.processor_type!r}, not {processor_type!r}; "
                "clear it or use another id"
            )
        if mode is not None and mode is not self.mode:
            raise FailedPrecondition(
                f"chunk id uses mode {self.mode.name}, not {mode.name}; clear it or use another id"
            )

    def is_duplicate(self, sequence: int) -> bool:
        """Whether a chunk numbered `sequence` was applied already (0: never)."""
        return 0 < sequence <= self.last_sequence

    def feed(self, chunk: str, *, final: bool = False, sequence: int = 0) -> ChunkResult:
        """Apply `chunk`, the last one when `final`; returns what it adds. Raises an
        EngineError, having changed nothing, when it cannot be applied. Feed only chunks
        that are not duplicates, to a session not finished."""
        tracker = self._tracker
        mark = tracker.mark() if final else None
        delta, reset = tracker.add(chunk, max_text_bytes=self._limits.max_text_bytes)
        processor = self.processor
        failed = self.failed
        if reset:
            processor = self._new_processor()
            failed = False
        output: Output | None = None
        error: EngineError | None = None
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
        max_response_bytes = self._limits.max_response_bytes
        if final:
            result = ChunkResult(
                self.chunk_id, sequence, delta, output, error, True, tracker.text, reset
            )
            size = self._response_size(result)
            if size > max_response_bytes:
                tracker.restore(cast("tuple[int, str, str]", mark))  # taken: this is a final
                if processor is self.processor and processor is not None and not self.failed:
                    # The final was read into the id's own processor: read the text again.
                    self.processor, self.failed = self._rebuilt()
                raise ResourceExhausted(
                    f"the final response would be {size} bytes, over the limit of "
                    f"{max_response_bytes} bytes (--max-response-bytes); "
                    "nothing changed: read the text with GetCompleteText, then clear the id",
                    subject="--max-response-bytes",
                )
            self.finished = True
        else:
            result = ChunkResult(self.chunk_id, sequence, delta, output, error, False, "", reset)
            if output is not None and len(chunk) > self._measure_from:
                size = self._response_size(result)
                if size > max_response_bytes:
                    failed = True
                    result.output = None
                    result.error = InvalidArgument(
                        f"this chunk's output would be {size} bytes, over the limit of "
                        f"{max_response_bytes} bytes (--max-response-bytes); "
                        "no more output for this id"
                    )
        # A stopped processor is never called again: what it holds is let go.
        self.processor = None if failed else processor
        self.failed = failed
        if sequence:
            self.last_sequence = sequence
        return result

    def _new_processor(self) -> Processor | None:
        factory = self._factory
        if not getattr(factory, "reads_text", True):
            return None
        return factory(self.chunk_id, max_json_depth=self._limits.max_json_depth)

    def _rebuilt(self) -> tuple[Processor | None, bool]:
        """(processor, failed) as they were before the final reached the processor: rebuilt
        from the tracked text, as any store could. One that cannot read the text again is
        let go, as any stopped processor is."""
        processor = self._new_processor()
        text = self._tracker.text
        try:
            if text and processor is not None:
                processor.process(text, final=False, complete_text=lambda: text)
        except InvalidArgument:
            return None, True
        return processor, False
