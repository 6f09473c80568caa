"""The complete text of one chunk id, and what each chunk adds to it.

Theory of operation
-------------------
Three modes say how a chunk relates to the text so far.

AUTO is the original heuristic, kept byte for byte for callers that mix snapshots and
fragments. It keeps ``last_seen``, the last chunk that added anything::

    if last_seen is empty:            delta = chunk
    elif chunk starts with last_seen: delta = chunk[len(last_seen):]
    elif last_seen occurs in chunk:   delta = what follows its first occurrence
    else:                             delta = chunk
    if delta:                         text += delta; last_seen = chunk

So an empty first chunk still creates the id, with text "", and a fragment equal to the
previous chunk is taken for a repeat and lost ("ha", "ha" gives "ha").

APPEND: the delta is the chunk. SNAPSHOT: the chunk is the whole text; the delta is what it
adds, and a chunk that does not start with the text so far rewrites it: ``reset``, and the
delta is the whole chunk.

Storage: APPEND and AUTO text lives in a ``bytearray`` of UTF-8, which grows in place with
over-allocation, so a chunk costs O(len(chunk)) however long the text is, and a tracked
byte costs about one byte. SNAPSHOT keeps the last snapshot string itself: every chunk is
the whole text anyway, and comparing against it is O(len(chunk)).
"""

from __future__ import annotations

import enum
import sys

from ._errors import ResourceExhausted


class Mode(enum.Enum):
    """How a chunk relates to the text so far (see above)."""

    AUTO = "auto"
    APPEND = "append"
    SNAPSHOT = "snapshot"


#: What a chunk adds: (text, reset). A plain tuple, not a NamedTuple: building one of those
#: costs ten times as much, once per chunk.
Delta = tuple[str, bool]

_NO_CHANGE: Delta = ("", False)

# Module constants: in Python 3.11 reading a member off its enum class costs ~0.2 µs, and
# add() runs once per chunk.
_APPEND = Mode.APPEND
_AUTO = Mode.AUTO
_SNAPSHOT = Mode.SNAPSHOT


_sizeof = sys.getsizeof
# What a bytearray may allocate beyond an eighth of its size: its header and CPython's
# small constant of over-allocation.
_BYTEARRAY_SLACK = _sizeof(bytearray()) + 16


def _too_long(size: int, limit: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"text would be {size} bytes, over the limit of {limit} bytes", subject="--max-text-bytes"
    )


class Tracker:
    """The complete text of one id and the delta of each chunk."""

    __slots__ = ("mode", "_buffer", "_snapshot", "_last_seen")

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self._buffer = bytearray()
        self._snapshot = ""
        self._last_seen = ""

    def add(self, chunk: str, *, max_text_bytes: int | None = None) -> Delta:
        """Track `chunk`; returns what is new. Raises ResourceExhausted, changing nothing,
        when the text would pass `max_text_bytes`."""
        mode = self.mode
        if mode is _APPEND:
            delta = chunk
        elif mode is _SNAPSHOT:
            return self._add_snapshot(chunk, max_text_bytes)
        else:
            delta = self._auto_delta(chunk)
        if not delta:
            return _NO_CHANGE
        encoded = delta.encode()
        if max_text_bytes is not None and len(self._buffer) + len(encoded) > max_text_bytes:
            raise _too_long(len(self._buffer) + len(encoded), max_text_bytes)
        self._buffer += encoded
        if mode is _AUTO:
            self._last_seen = chunk
        return (delta, False)

    def _auto_delta(self, chunk: str) -> str:
        last_seen = self._last_seen
        if not last_seen:
            return chunk
        if chunk.startswith(last_seen):
            return chunk[len(last_seen) :]
        at = chunk.find(last_seen)
        if at >= 0:
            return chunk[at + len(last_seen) :]
        return chunk

    def _add_snapshot(self, chunk: str, max_text_bytes: int | None) -> Delta:
        text = self._snapshot
        if chunk == text:
            return _NO_CHANGE
        if max_text_bytes is not None:
            size = len(chunk.encode())
            if size > max_text_bytes:
                raise _too_long(size, max_text_bytes)
        self._snapshot = chunk
        if chunk.startswith(text):
            return (chunk[len(text) :], False)
        return (chunk, True)

    def mark(self) -> tuple[int, str, str]:
        """Where the text stands now; `restore` goes back to it. O(1)."""
        return (len(self._buffer), self._last_seen, self._snapshot)

    def restore(self, mark: tuple[int, str, str]) -> None:
        """Undo every `add` since `mark` was taken."""
        size, self._last_seen, self._snapshot = mark
        del self._buffer[size:]

    @property
    def held_bytes(self) -> int:
        """The memory this tracker holds, as the interpreter counts it; O(1)."""
        return _sizeof(self._buffer) + _sizeof(self._last_seen) + _sizeof(self._snapshot)

    def growth_bound(self, chunk: str) -> int:
        """The most `held_bytes` can grow by when `chunk` is added, however it relates to
        the text: its UTF-8 plus the buffer's over-allocation (an eighth of the new size),
        and in AUTO mode the chunk kept as the last one seen; in SNAPSHOT mode the chunk
        kept as the text."""
        mode = self.mode
        if mode is _SNAPSHOT:
            return _sizeof(chunk)
        encoded = len(chunk) if chunk.isascii() else 4 * len(chunk)
        grown = (len(self._buffer) + encoded) * 9 // 8 + _BYTEARRAY_SLACK
        bound = max(0, grown - _sizeof(self._buffer))
        return bound + _sizeof(chunk) if mode is _AUTO else bound

    @property
    def text_bytes(self) -> int:
        """The UTF-8 size of the text: O(1), except for a non-ASCII snapshot, O(its length)."""
        if self.mode is _SNAPSHOT:
            snapshot = self._snapshot
            return len(snapshot) if snapshot.isascii() else len(snapshot.encode())
        return len(self._buffer)

    @property
    def text(self) -> str:
        if self.mode is _SNAPSHOT:
            return self._snapshot
        return self._buffer.decode()

    @property
    def text_utf8(self) -> bytes:
        """The text as UTF-8: in APPEND and AUTO mode a copy of the buffer, with none of
        decoding's checks."""
        if self.mode is _SNAPSHOT:
            return self._snapshot.encode()
        return bytes(self._buffer)
