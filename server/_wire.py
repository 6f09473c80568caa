"""ProcessChunksResponse encoded straight to protobuf wire format, for the common answers,
and GetCompleteTextResponse.

Why by hand: a 16-byte chunk's whole engine work costs about as much as building its
response as upb message objects (each constructor, sub-message access and repeated-field
add is a C call of about a microsecond) and serializing it. Writing the bytes directly
costs about half. The format is protobuf's (varint tags and lengths, fields in number
order); `tests/test_server_wire.py` checks the bytes parse to exactly the message
`_convert.chunk_response` builds, over generated results.

Answers with an error or a ReasoningFile, and any plugin output, are rare or large enough
not to matter: they go through `_convert` and upb.

A megabyte of dense JSON makes 400,000 ops and a 7 MB answer. Each C call here holds the
GIL until it returns, so the ops' pieces are joined a batch at a time, and the answer's
megabytes are copied once, by the last join. A complete text comes as UTF-8 and is copied
once here (and once from the tracker): decoding 8 MB, handing it to upb and serializing
held the GIL for 9 ms, the two copies 1.2 ms.
"""

from __future__ import annotations

from operator import attrgetter

from chunkwise.v1 import streaming_pb2 as pb
from google.protobuf.descriptor import FieldDescriptor

from server import _convert
from server.engine import (
    ChunkResult,
    Output,
    PartialJson,
    ReasoningFile,
    ReasoningText,
    Set,
    TextInfo,
)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Most lengths and sequence numbers are small: their varints, of one or two bytes, are
# looked up.
_SMALL_LIMIT = 1 << 14
_SMALL = [_varint(n) for n in range(_SMALL_LIMIT)]


def _head(tag: bytes, size: int) -> bytes:
    return tag + (_SMALL[size] if size < _SMALL_LIMIT else _varint(size))


def _field(tag: bytes, data: bytes) -> bytes:
    """One length-delimited field. Most lengths are small: their varints are looked up."""
    size = len(data)
    return tag + (_SMALL[size] if size < _SMALL_LIMIT else _varint(size)) + data


# Wire types by field type, for the types these messages use: a type missing here fails
# at import, not with wrong bytes.
_WIRE_TYPES = {
    FieldDescriptor.TYPE_UINT64: 0,
    FieldDescriptor.TYPE_UINT32: 0,
    FieldDescriptor.TYPE_BOOL: 0,
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
}


_MESSAGES = (
    pb.ProcessChunksResponse,
    pb.Error,
    pb.ProcessedOutput,
    pb.PartialJson,
    pb.JsonDelta,
    pb.ReasoningText,
    pb.ReasoningFile,
    pb.FileDelta,
    pb.GetCompleteTextResponse,
)
# Every tag here is one byte, (field number << 3) | wire type: true while every field
# number is below 16, as the sizes in response_size count too.
if any(field.number >= 16 for message in _MESSAGES for field in message.DESCRIPTOR.fields):
    raise ImportError("a response field numbered 16 or more: its tag takes two bytes")
# By (message name, field name). A dict built here, not a function: it is computed once,
# at import, and so are the constants taken from it.
_TAGS = {
    (message.DESCRIPTOR.name, field.name): bytes(((field.number << 3) | _WIRE_TYPES[field.type],))
    for message in _MESSAGES
    for field in message.DESCRIPTOR.fields
}


# Computed once, here: per answer they are constants, as fast as literals.
_CHUNK_ID, _SEQUENCE, _DELTA, _OUTPUT, _COMPLETE_TEXT = (
    _TAGS["ProcessChunksResponse", name]
    for name in ("chunk_id", "sequence", "delta", "output", "complete_text")
)
_TRUE = b"\x01"
_FINAL_TRUE, _RESET_TRUE, _DUPLICATE_TRUE = (
    _TAGS["ProcessChunksResponse", name] + _TRUE for name in ("final", "reset", "duplicate")
)
_OUTPUT_TEXT, _OUTPUT_JSON = (_TAGS["ProcessedOutput", name] for name in ("text", "json"))
_JSON_DELTAS, _JSON_VALUE = (_TAGS["PartialJson", name] for name in ("deltas", "value_json"))
_DELTA_PATH, _DELTA_APPEND, _DELTA_SET = (
    _TAGS["JsonDelta", name] for name in ("path", "append", "set_json")
)
# ReasoningText's fields, in number order as protobuf writes them, each read from the
# engine's ReasoningText by the field's name.
_TEXT_FIELDS = sorted(pb.ReasoningText.DESCRIPTOR.fields, key=lambda field: field.number)
_TEXT_NAMES = tuple(field.name for field in _TEXT_FIELDS)
_TEXT_TAGS = tuple(_TAGS["ReasoningText", name] for name in _TEXT_NAMES)
_text_values = attrgetter(*_TEXT_NAMES)
_TEXT, _LAST_SEQUENCE, _PROCESSOR_TYPE = (
    _TAGS["GetCompleteTextResponse", name] for name in ("text", "last_sequence", "processor_type")
)


def as_duplicate(response: bytes) -> bytes:
    """An encoded response to a first request, as the answer to its duplicates: the same
    bytes with `duplicate` set. It is the last field by number, so appending it keeps
    the fields in order."""
    return response + _DUPLICATE_TRUE


def chunk_response(result: ChunkResult) -> bytes:
    """The serialized ProcessChunksResponse for `result`."""
    output = result.output
    if output is None and not (result.final or result.reset or result.duplicate):
        # The commonest answer, the `text` processor's: id, sequence, delta, and nothing
        # else. One join instead of the general path's calls halves its cost.
        chunk_id = result.chunk_id.encode()
        delta = result.delta.encode()
        sequence = result.sequence
        if (
            result.error is None
            and 0 < len(chunk_id) < _SMALL_LIMIT
            and 0 < len(delta) < _SMALL_LIMIT
            and 0 < sequence < _SMALL_LIMIT
        ):
            return b"".join(
                (
                    _CHUNK_ID,
                    _SMALL[len(chunk_id)],
                    chunk_id,
                    _SEQUENCE,
                    _SMALL[sequence],
                    _DELTA,
                    _SMALL[len(delta)],
                    delta,
                )
            )
    if result.error is not None or not (
        output is None or type(output) is PartialJson or type(output) is ReasoningText
    ):
        return _convert.chunk_response(result).SerializeToString()
    parts: list[bytes] = []
    if result.chunk_id:
        parts.append(_field(_CHUNK_ID, result.chunk_id.encode()))
    sequence = result.sequence
    if sequence:
        parts += (_SEQUENCE, _SMALL[sequence] if sequence < _SMALL_LIMIT else _varint(sequence))
    if result.delta:
        parts.append(_field(_DELTA, result.delta.encode()))
    if output is not None:
        if type(output) is PartialJson:
            parts += _json(output)
        else:
            # A ReasoningText: the check above let no other type through, which mypy does
            # not follow for a class that may have subclasses.
            parts.append(_field(_OUTPUT, _reasoning_text(output)))  # type: ignore[arg-type]
    if result.final:
        parts.append(_FINAL_TRUE)
        if result.complete_text:
            parts.append(_field(_COMPLETE_TEXT, result.complete_text.encode()))
    if result.reset:
        parts.append(_RESET_TRUE)
    if result.duplicate:
        parts.append(_DUPLICATE_TRUE)
    return b"".join(parts)


def complete_text_response(info: TextInfo) -> bytes:
    """The serialized GetCompleteTextResponse for `info`."""
    utf8 = info.utf8
    parts = [_head(_TEXT, len(utf8)), utf8] if utf8 else []
    if info.last_sequence:
        parts.append(_head(_LAST_SEQUENCE, info.last_sequence))
    if info.processor_type:
        parts.append(_field(_PROCESSOR_TYPE, info.processor_type.encode()))
    return b"".join(parts)


#: Ops joined in one go: a few hundred kilobytes, a fraction of a millisecond.
_JOIN_BATCH = 4096


def _json(output: PartialJson) -> list[bytes]:
    """The response's `output` field, in pieces to be joined with the rest."""
    deltas = output.deltas
    pieces: list[bytes] = []
    parts: list[bytes] = []
    for start in range(0, len(deltas), _JOIN_BATCH):
        for op in deltas[start : start + _JOIN_BATCH]:
            path, value = op
            # A oneof member is written even when empty: that is what selects it.
            entry = _field(_DELTA_SET if type(op) is Set else _DELTA_APPEND, value.encode())
            if path:
                entry = _field(_DELTA_PATH, path.encode()) + entry
            parts.append(_field(_JSON_DELTAS, entry))
        pieces.append(b"".join(parts))
        parts.clear()
    if output.value_json:
        pieces.append(_field(_JSON_VALUE, output.value_json.encode()))
    # The `json` member of the output's oneof is present even when empty.
    inner = sum(map(len, pieces))
    json_head = _head(_OUTPUT_JSON, inner)
    return [_head(_OUTPUT, len(json_head) + inner), json_head, *pieces]


def _reasoning_text(output: ReasoningText) -> bytes:
    body = b"".join(
        [
            _field(tag, value.encode())
            for tag, value in zip(_TEXT_TAGS, _text_values(output), strict=True)
            if value
        ]
    )
    return _field(_OUTPUT_TEXT, body)


# -- sizes, for refusing a response too big to send before it is built ------------------


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _varint_size(value: int) -> int:
    return 1 if value < 0x80 else (value.bit_length() + 6) // 7


def _string(text: str) -> int:
    """A string field: left out when empty, else its tag (one byte: see _MESSAGES), its
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
    it, so that a final too big to send is refused before it is built: O(number of
    strings). Exact for the built-in outputs; a plugin's own output type counts as an empty
    output. An error's code is a gRPC status number, one byte."""
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
    # `type(output) is` each time, not kept in a variable: mypy narrows only that form.
    if type(output) is PartialJson:
        size = _string(output.value_json)
        for path, value in output.deltas:
            size += _nested(_string(path) + _nested(_utf8_size(value)))
        return size
    if type(output) is ReasoningText:
        return (
            _string(output.id)
            + _string(output.title)
            + _string(output.secondary_title)
            + _string(output.message_chunk)
            + _string(output.message)
            + _string(output.status)
        )
    if type(output) is ReasoningFile:
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
