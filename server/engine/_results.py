from __future__ import annotations

from dataclasses import dataclass

from ._errors import EngineError
from ._outputs import Output


# Not frozen: a frozen dataclass's __init__ costs several microseconds more, once per chunk.
@dataclass(slots=True)
class ChunkResult:
    """The answer to one chunk: what a ProcessChunksResponse carries. Read it; don't change it:
    the engine keeps recent results to answer duplicates."""

    chunk_id: str
    sequence: int
    delta: str = ""
    output: Output | None = None
    error: EngineError | None = None
    final: bool = False
    complete_text: str = ""
    reset: bool = False
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class TextInfo:
    """What GetCompleteText answers. The text is UTF-8, as the tracker keeps it and the
    answer carries it: a read of megabytes is copied, never decoded and encoded again."""

    utf8: bytes
    last_sequence: int
    processor_type: str

    @property
    def text(self) -> str:
        return self.utf8.decode()
