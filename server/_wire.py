"""ProcessChunksResponse encoded straight to protobuf wire format, for the common answers.

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
megabytes are copied once, by the last join.
"""

from __future__ import annotations

from server import _convert
from server.engine import ChunkResult, PartialJson, ReasoningText, Set


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


# Tags: (field number << 3) | wire type (0 varint, 2 length-delimited).
_CHUNK_ID, _SEQUENCE, _DELTA, _OUTPUT = b"\x0a", b"\x10", b"\x1a", b"\x22"
_FINAL_TRUE, _COMPLETE_TEXT, _RESET_TRUE, _DUPLICATE_TRUE = (
    b"\x30\x01",
    b"\x3a",
    b"\x40\x01",
    b"\x48\x01",
)
_OUTPUT_TEXT, _OUTPUT_JSON = b"\x0a", b"\x1a"  # ProcessedOutput.text = 1, .json = 3
_JSON_DELTAS, _JSON_VALUE = b"\x0a", b"\x12"  # PartialJson.deltas = 1, .value_json = 2
_DELTA_PATH, _DELTA_APPEND, _DELTA_SET = b"\x0a", b"\x12", b"\x1a"  # JsonDelta fields
_TEXT_TAGS = [bytes(((number << 3) | 2,)) for number in range(1, 7)]  # ReasoningText 1-6


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
            parts.append(_field(_OUTPUT, _reasoning_text(output)))
    if result.final:
        parts.append(_FINAL_TRUE)
        if result.complete_text:
            parts.append(_field(_COMPLETE_TEXT, result.complete_text.encode()))
    if result.reset:
        parts.append(_RESET_TRUE)
    if result.duplicate:
        parts.append(_DUPLICATE_TRUE)
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
    fields = (
        output.id,
        output.title,
        output.secondary_title,
        output.message_chunk,
        output.message,
        output.status,
    )
    body = b"".join(
        [_field(_TEXT_TAGS[k], value.encode()) for k, value in enumerate(fields) if value]
    )
    return _field(_OUTPUT_TEXT, body)
