"""What ``process`` sends for one id's chunks, the same for both clients.

No I/O: the client reads each chunk (from a list, a generator or an async generator),
pushes it into a ``FeedPlan`` and sends the ``Send`` that comes out; once the chunks run out
it sends ``closing()``, if any. Reading, sending and stopping early are the client's.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Sequence
from typing import Generic, NamedTuple, TypeVar

from . import _convert
from ._models import Mode


class Send(NamedTuple):
    """One chunk to send: the arguments of ``send``, by name (``send(**plan_send._asdict())``)."""

    chunk_id: str
    chunk: str
    processor_type: str
    mode: Mode | None
    final: bool


#: What ``chunks`` is: an iterable for ``Client``, either kind for ``AsyncClient``.
_Chunks = TypeVar("_Chunks", bound=Iterable[str] | AsyncIterable[str])


class FeedPlan(Generic[_Chunks]):
    """The requests of ``Client.process`` and ``AsyncClient.process`` for one id.

    A list or tuple says where it ends, so with ``final`` its last chunk goes as the final
    one (an empty list: one empty final chunk). Any other iterable says so only once it is
    exhausted: its chunks go as they are read, then a final chunk that adds nothing, which
    is empty, or in "snapshot" mode the last snapshot again (a shorter one would be a
    rewrite). A bad ``mode`` or a str for ``chunks`` is refused here, before anything is
    sent.
    """

    def __init__(
        self,
        chunk_id: str,
        chunks: _Chunks,
        *,
        processor_type: str,
        mode: Mode | None,
        final: bool,
    ) -> None:
        _convert.mode_number(mode)
        if isinstance(chunks, str):
            raise TypeError("chunks must be an iterable of str, not a str")
        self.chunk_id = chunk_id
        self.chunks = chunks
        self._processor_type = processor_type
        self._mode = mode
        self._final = final
        self._count = len(chunks) if isinstance(chunks, Sequence) else None
        self._read = 0
        self._last_chunk = ""
        self._final_sent = False

    def send(self, chunk: str) -> Send:
        """What to send for the next chunk read."""
        self._read += 1
        self._last_chunk = chunk
        self._final_sent = self._final and self._read == self._count
        return self._send(chunk, self._final_sent)

    def closing(self) -> Send | None:
        """What to send once the chunks run out: None when the last one went final or no
        final chunk is wanted."""
        if not self._final or self._final_sent:
            return None
        return self._send(self._last_chunk if self._mode == "snapshot" else "", True)

    def _send(self, chunk: str, final: bool) -> Send:
        return Send(self.chunk_id, chunk, self._processor_type, self._mode, final)
