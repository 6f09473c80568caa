"""Keys of any spelling survive the whole way: the server's JSON reader writes them as RFC
6901 pointers ("~" as "~0", "/" as "~1"), the wire carries them, and the client's
JsonBuilder decodes them back. Keys like "a~1b" or "~01" are where encoding or decoding in
the wrong order shows: "a~1b" must come back as "a~1b", not "a/b"."""

from __future__ import annotations

import json

from chunkwise.v1 import streaming_pb2 as pb
from helpers import chunkings_of
from hypothesis import given, settings
from hypothesis import strategies as st

from client import JsonBuilder
from client._convert import chunk_update
from server import _wire
from server.engine import Mode
from server.streams import Streams

APPEND = Mode.APPEND

# Pointer syntax and the escapes themselves, glued together, beside any other text.
keys = st.lists(
    st.sampled_from(["~", "/", "~0", "~1", "~01", "~10", "0", "1", "a", "é", "😀", '"', "\\"])
    | st.text(max_size=2),
    max_size=5,
).map("".join)
scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=6)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)


@st.composite
def documents(draw: st.DrawFn) -> tuple[object, list[str]]:
    value = draw(st.dictionaries(keys, values, min_size=1, max_size=5))
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    return value, draw(chunkings_of(text))


def rebuilt(chunks: list[str]):
    """(the client's JsonBuilder, the final update) after `chunks` went through the json
    processor, the wire encoding and the client's conversion, the last one final."""
    parser = Streams()
    builder = JsonBuilder()
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        result = parser.process("doc", chunk, processor_type="json", mode=APPEND, final=last)
        update = chunk_update(pb.ProcessChunksResponse.FromString(_wire.chunk_response(result)))
        assert update.error is None, update.error
        builder.apply(update)
    return builder, update


@settings(max_examples=150)
@given(documents())
def test_any_key_comes_back_as_it_was_written(document) -> None:
    value, chunks = document
    builder, final = rebuilt(chunks)
    assert builder.value == value
    assert json.loads(final.output.value_json) == value


def test_keys_whose_escapes_decode_differently_in_the_wrong_order() -> None:
    # "a~1b" is sent as "a~01b": decoding ~0 first would make that "a~1b", then "a/b", a
    # key the document also has.
    value = {"a~1b": {"~01": 1, "/": [{"~": "x"}]}, "a/b": {"~1": "y", "~0": "z"}}
    builder, _ = rebuilt(list(json.dumps(value)))
    assert builder.value == value
