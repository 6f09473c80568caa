"""Numbering requests per id, and remembering the ones not answered yet.

Exactly-once text over a stream that can drop works like this: the client numbers its
requests per chunk id (1, 2, 3, ...) and keeps every request it sent until its answer
arrives. Answers come one per request, in request order, so the oldest kept request is the
one the next answer is for. When the stream drops, the kept requests are sent again on a new
stream with their original numbers; the server applies a number at most once and answers a
number it already applied with ``duplicate = true``. So each chunk is applied once, whether
its first answer was lost or the request itself was.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from chunkwise.v1 import streaming_pb2

from ._errors import ProtocolError


class Sequencer:
    """Per-id request numbers, shared by every stream of one client.

    The numbers go on across streams, so an id can be used again after its final chunk:
    the server remembers the last number of a finished id and takes only higher ones.
    The ``max_ids`` ids used longest ago are forgotten first; an id used again after that
    starts over at 1, like an id the server has forgotten too.
    """

    def __init__(self, max_ids: int = 100_000) -> None:
        # Per id: the last number given, and whether the caller placed the numbering.
        self._last: OrderedDict[str, tuple[int, bool]] = OrderedDict()
        self._max_ids = max_ids
        self._lock = threading.Lock()

    def next(self, chunk_id: str) -> tuple[int, bool]:
        """The next number of ``chunk_id``, and whether it follows one that
        ``continue_after`` placed rather than this client's own count from 1."""
        with self._lock:
            last, placed = self._last.pop(chunk_id, (0, False))
            self._remember(chunk_id, last + 1, placed)
            return last + 1, placed

    def continue_after(self, chunk_id: str, last: int) -> None:
        """Number the next request of ``chunk_id`` ``last + 1``, lower than before or not."""
        with self._lock:
            self._last.pop(chunk_id, None)
            self._remember(chunk_id, last, True)

    def _remember(self, chunk_id: str, last: int, placed: bool) -> None:
        self._last[chunk_id] = (last, placed)
        if len(self._last) > self._max_ids:
            self._last.popitem(last=False)


@dataclass(slots=True)
class Pending:
    request: streaming_pb2.ProcessChunksRequest
    # Numbered after a continue_after: a number the caller chose, perhaps to resend.
    placed: bool = False
    sends: int = 1


class Outstanding:
    """The requests of one stream sent but not answered yet, oldest first. Not thread-safe:
    the stream that owns it holds its lock."""

    def __init__(self) -> None:
        self._pending: deque[Pending] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, request: streaming_pb2.ProcessChunksRequest, *, placed: bool) -> None:
        self._pending.append(Pending(request, placed))

    def resend(self) -> list[streaming_pb2.ProcessChunksRequest]:
        """Every request not answered yet, oldest first, counted as sent once more."""
        for pending in self._pending:
            pending.sends += 1
        return [pending.request for pending in self._pending]

    def answer(self, response: streaming_pb2.ProcessChunksResponse) -> Pending:
        """Take the request this answer is for; it must be the oldest one kept."""
        if not self._pending:
            raise ProtocolError(
                f"an answer for {response.chunk_id!r} #{response.sequence} came with no request "
                "waiting"
            )
        oldest = self._pending[0].request
        if (response.chunk_id, response.sequence) != (oldest.chunk_id, oldest.sequence):
            raise ProtocolError(
                f"an answer for {response.chunk_id!r} #{response.sequence} came where one for "
                f"{oldest.chunk_id!r} #{oldest.sequence} was due"
            )
        return self._pending.popleft()
