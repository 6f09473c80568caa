"""StreamingParser: the one object a servicer talks to."""

from __future__ import annotations

import time
from collections.abc import Callable

from ._limits import Limits
from ._results import ChunkResult, TextInfo


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
        raise NotImplementedError

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
    ) -> ChunkResult:
        """Apply one chunk; never raises an EngineError: a refusal comes back as
        `ChunkResult.error`. `mode` is the proto DeltaMode number (0 = unspecified).
        Ids live per `namespace` (a tenant): the same id in two namespaces is two ids."""
        raise NotImplementedError

    def complete_text(self, chunk_id: str, *, namespace: str = "") -> TextInfo:
        """Raises InvalidArgument for a bad id, NotFound for an untracked one."""
        raise NotImplementedError

    def clear(self, chunk_id: str, *, namespace: str = "") -> bool:
        """Forget the id; False when nothing was tracked. Raises InvalidArgument for a bad id."""
        raise NotImplementedError

    def processors(self) -> list[tuple[str, str]]:
        """(name, description) of every processor, sorted by name."""
        raise NotImplementedError

    def expire(self) -> int:
        """Forget ids idle past the TTL; returns how many. Call it every second or so."""
        raise NotImplementedError
