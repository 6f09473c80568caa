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
    """What GetCompleteText answers."""

    text: str
    last_sequence: int
    processor_type: str
