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


def _varint_size(value: int) -> int:
    return 1 if value < 0x80 else (value.bit_length() + 6) // 7


def _string(text: str) -> int:
    """A string field: left out when empty, else its tag (one byte for fields 1-15), its
    length's varint and its bytes."""
    if not text:
        return 0
    size = _utf8_size(text)
    return 1 + _varint_size(size) + size


def _nested(size: int) -> int:
    """A message field that is present, empty or not (a oneof member is written even when
    empty: that is what selects it)."""
    return 1 + _varint_size(size) + size


def _number(value: int) -> int:
    return 1 + _varint_size(value) if value else 0


def response_size(result: ChunkResult) -> int:
    """The bytes the ProcessChunksResponse for `result` encodes to, computed without encoding
    it: O(number of strings). Exact for the built-in outputs; a plugin's own output type
    counts as an empty output. An error's code is a gRPC status number, one byte."""
    size = _string(result.chunk_id) + _number(result.sequence) + _string(result.delta)
    if result.error is not None:
        size += _nested(2 + _string(result.error.message))
    output = result.output
    if output is not None:
        size += _nested(_nested(_output_size(output)))
    if result.final:
        size += 2 + _string(result.complete_text)
    if result.reset:
        size += 2
    if result.duplicate:
        size += 2
    return size


def _output_size(output: Output) -> int:
    """The size of the output's oneof member, without its own tag and length."""
    kind = type(output)
    if kind is PartialJson:
        size = _string(output.value_json)
        for path, value in output.deltas:
            size += _nested(_string(path) + _nested(_utf8_size(value)))
        return size
    if kind is ReasoningText:
        return (
            _string(output.id)
            + _string(output.title)
            + _string(output.secondary_title)
            + _string(output.message_chunk)
            + _string(output.message)
            + _string(output.status)
        )
    if kind is ReasoningFile:
        size = _string(output.id) + _string(output.title)
        size += _string(output.secondary_title) + _string(output.status)
        for f in output.files:
            size += _nested(
                _string(f.id)
                + _string(f.file_type)
                + _string(f.file_name)
                + _number(f.version_number)
                + _string(f.status)
                + _string(f.text_chunk)
                + _string(f.text)
            )
        return size
    return 0
