from __future__ import annotations

from dataclasses import dataclass

from ._errors import EngineError
from ._outputs import Output, PartialJson, ReasoningFile, ReasoningText


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


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


# A length-delimited field costs its tag (1 byte here), its length's varint (at most 5) and
# its bytes; a varint field at most 11.
_FIELD = 6


def response_size_bound(result: ChunkResult) -> int:
    """The most bytes the ProcessChunksResponse for `result` encodes to, for the built-in
    outputs (a plugin's own output type is not counted). O(size of the result)."""
    size = 11 * 4 + 3 * _FIELD  # sequence, the flags, error's code; id, delta, output
    size += _utf8_size(result.chunk_id) + _utf8_size(result.delta)
    size += _FIELD + _utf8_size(result.complete_text)
    if result.error is not None:
        size += 2 * _FIELD + 11 + _utf8_size(result.error.message)
    output = result.output
    kind = type(output)
    if kind is PartialJson:
        size += 2 * _FIELD + _utf8_size(output.value_json)
        for path, value in output.deltas:
            size += 3 * _FIELD + _utf8_size(path) + _utf8_size(value)
    elif kind is ReasoningText:
        size += 7 * _FIELD
        for text in (output.id, output.title, output.secondary_title, output.message_chunk):
            size += _utf8_size(text)
        size += _utf8_size(output.message) + _utf8_size(output.status)
    elif kind is ReasoningFile:
        size += 5 * _FIELD + _utf8_size(output.id) + _utf8_size(output.title)
        size += _utf8_size(output.secondary_title) + _utf8_size(output.status)
        for f in output.files:
            size += 7 * _FIELD + 11 + _utf8_size(f.id) + _utf8_size(f.file_type)
            size += _utf8_size(f.file_name) + _utf8_size(f.status)
            size += _utf8_size(f.text_chunk) + _utf8_size(f.text)
    return size
