"""The hand-written ProcessChunksResponse and GetCompleteTextResponse encoders against
protobuf's own: over generated results, their bytes parse to exactly the message upb builds
(through `_convert` for chunks)."""

from __future__ import annotations

import pytest
from chunkwise.v1 import streaming_pb2 as pb
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from server import _convert, _wire
from server.engine import (
    Append,
    ChunkResult,
    FileDelta,
    InvalidArgument,
    PartialJson,
    ReasoningFile,
    ReasoningText,
    Set,
    TextInfo,
)
from server.servicer import add_to_server

text = st.text(max_size=40)
# Long runs too: lengths of one, two and three varint bytes.
repeated = st.builds(lambda c, n: c * n, st.sampled_from("a€😀"), st.integers(0, 20_000))
long_text = st.text(max_size=300) | repeated
ops = st.lists(st.builds(Set, text, text) | st.builds(Append, text, text), max_size=6)
outputs = st.none() | st.builds(PartialJson, ops, text)
outputs |= st.builds(ReasoningText, text, text, text, text, long_text, text)
files = st.lists(
    st.builds(FileDelta, text, text, text, st.integers(0, 2**32 - 1), text, text, text),
    max_size=2,
)
outputs |= st.builds(ReasoningFile, text, text, text, text, files)
results = st.builds(
    ChunkResult,
    chunk_id=text,
    sequence=st.integers(0, 2**64 - 1),
    delta=long_text,
    output=outputs,
    error=st.none() | st.builds(InvalidArgument, text),
    final=st.booleans(),
    complete_text=long_text,
    reset=st.booleans(),
    duplicate=st.booleans(),
)


@settings(max_examples=1000)
@given(results)
def test_the_encoded_response_is_the_message_convert_builds(result: ChunkResult) -> None:
    expected = _convert.chunk_response(result)
    encoded = _wire.chunk_response(result)
    # Byte for byte too: an empty field written out, or a longer varint than needed, parses
    # to the same message but costs bytes on every answer.
    assert encoded == expected.SerializeToString()
    got = pb.ProcessChunksResponse.FromString(encoded)
    assert got == expected
    assert got.ListFields() == expected.ListFields()
    assert got.output.WhichOneof("kind") == expected.output.WhichOneof("kind")


# The `text` processor's answers: no output, and lengths and sequences around the point where
# their varints grow a byte.
plain_results = st.builds(
    ChunkResult,
    chunk_id=text | repeated,
    sequence=st.integers(0, 20_000) | st.sampled_from([16383, 16384, 2**32]),
    delta=long_text,
)


@settings(max_examples=500)
@given(plain_results)
def test_an_answer_with_no_output_is_the_message_convert_builds(result: ChunkResult) -> None:
    encoded = _wire.chunk_response(result)
    assert encoded == _convert.chunk_response(result).SerializeToString()
    assert pb.ProcessChunksResponse.FromString(encoded) == _convert.chunk_response(result)


def test_an_empty_partial_json_still_selects_the_json_output() -> None:
    result = ChunkResult("id", 1, "x", PartialJson([]))
    got = pb.ProcessChunksResponse.FromString(_wire.chunk_response(result))
    assert got.HasField("output") and got.output.WhichOneof("kind") == "json"


def test_an_empty_set_value_still_selects_set_json() -> None:
    result = ChunkResult("id", 1, "", PartialJson([Set("/a", ""), Append("", "")]))
    got = pb.ProcessChunksResponse.FromString(_wire.chunk_response(result))
    assert [d.WhichOneof("op") for d in got.output.json.deltas] == ["set_json", "append"]


# Each tag constant of `_wire`, the message and the name of the field it is the tag of.
TAG_FIELDS = [
    ("_CHUNK_ID", pb.ProcessChunksResponse, "chunk_id"),
    ("_SEQUENCE", pb.ProcessChunksResponse, "sequence"),
    ("_DELTA", pb.ProcessChunksResponse, "delta"),
    ("_OUTPUT", pb.ProcessChunksResponse, "output"),
    ("_FINAL_TRUE", pb.ProcessChunksResponse, "final"),
    ("_COMPLETE_TEXT", pb.ProcessChunksResponse, "complete_text"),
    ("_RESET_TRUE", pb.ProcessChunksResponse, "reset"),
    ("_DUPLICATE_TRUE", pb.ProcessChunksResponse, "duplicate"),
    ("_OUTPUT_TEXT", pb.ProcessedOutput, "text"),
    ("_OUTPUT_JSON", pb.ProcessedOutput, "json"),
    ("_JSON_DELTAS", pb.PartialJson, "deltas"),
    ("_JSON_VALUE", pb.PartialJson, "value_json"),
    ("_DELTA_PATH", pb.JsonDelta, "path"),
    ("_DELTA_APPEND", pb.JsonDelta, "append"),
    ("_DELTA_SET", pb.JsonDelta, "set_json"),
]


def only_field(message_class: type, name: str) -> tuple[bytes, bytes]:
    """Protobuf's encoding of a `message_class` with only field `name` set, and the bytes
    after the field's tag: what remains is the tag."""
    message = message_class()
    field = message_class.DESCRIPTOR.fields_by_name[name]
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.is_repeated:
            getattr(message, name).add()
        else:
            getattr(message, name).SetInParent()
        after_tag = b"\x00"
    elif field.type == FieldDescriptor.TYPE_STRING:
        setattr(message, name, "x")
        after_tag = b"\x01x"
    elif field.type == FieldDescriptor.TYPE_BOOL:
        setattr(message, name, True)
        # The `_TRUE` constants hold the value too.
        after_tag = b""
    else:
        setattr(message, name, 1)
        after_tag = b"\x01"
    return message.SerializeToString(), after_tag


@pytest.mark.parametrize(("constant", "message_class", "name"), TAG_FIELDS)
def test_each_tag_is_the_one_protobuf_writes_for_its_field(
    constant: str, message_class: type, name: str
) -> None:
    encoded, after_tag = only_field(message_class, name)
    assert getattr(_wire, constant) + after_tag == encoded


def test_each_reasoning_text_field_is_read_by_name_and_tagged_as_protobuf_does() -> None:
    descriptor = pb.ReasoningText.DESCRIPTOR
    by_number = sorted(descriptor.fields, key=lambda field: field.number)
    assert _wire._TEXT_NAMES == tuple(field.name for field in by_number)
    for name, tag in zip(_wire._TEXT_NAMES, _wire._TEXT_TAGS, strict=True):
        encoded, after_tag = only_field(pb.ReasoningText, name)
        assert tag + after_tag == encoded, name
    # Every field once, each from the attribute of its own name.
    output = ReasoningText(*(f"<{name}>" for name in _wire._TEXT_NAMES))
    message = pb.ReasoningText.FromString(_wire._reasoning_text(output)[2:])
    assert all(getattr(message, name) == f"<{name}>" for name in _wire._TEXT_NAMES)


class _RecordingServer:
    def __init__(self) -> None:
        self.registered: dict[str, dict] = {}

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.registered[service] = handlers


def test_every_method_of_the_service_is_registered() -> None:
    server = _RecordingServer()
    add_to_server(object.__new__(_Servicer), server)
    service = pb.DESCRIPTOR.services_by_name["StreamingParser"]
    handlers = server.registered[service.full_name]
    assert set(handlers) == {method.name for method in service.methods}
    for method in service.methods:
        handler = handlers[method.name]
        assert handler.request_streaming == method.client_streaming
        assert handler.response_streaming == method.server_streaming
        assert handler.request_deserializer == getattr(pb, method.input_type.name).FromString
    # ProcessChunks and GetCompleteText write bytes they encoded themselves; the others
    # must be serialized by grpc, or their answers would go out as Python objects.
    own = {"ProcessChunks", "GetCompleteText"}
    assert all(handlers[name].response_serializer is None for name in own)
    assert all(h.response_serializer for name, h in handlers.items() if name not in own)


class _Servicer:
    async def ProcessChunks(self, requests, context):  # noqa: N802 - the RPC's name
        pass

    async def GetCompleteText(self, request, context):  # noqa: N802
        pass

    async def ClearChunk(self, request, context):  # noqa: N802
        pass

    async def ListProcessors(self, request, context):  # noqa: N802
        pass


def test_a_json_output_past_each_varint_size_and_join_batch_is_the_message_convert_builds():
    # Outputs of 16 KiB and 2 MiB need two- and three-byte lengths, and more ops than one
    # join batch takes; generated outputs are far smaller.
    for ops in (
        [Set("", '""'), Append("", "€" * 6000)],
        [Set("", "[]"), *(Set(f"/{i}", str(i)) for i in range(5000))],
        [Set("", '""'), Append("", "x" * (2 << 20))],
    ):
        result = ChunkResult("id", 1, "d", PartialJson(ops, "v"))
        got = pb.ProcessChunksResponse.FromString(_wire.chunk_response(result))
        assert got == _convert.chunk_response(result)


def test_lengths_around_the_two_byte_varint_limit_encode_as_protobuf_does():
    # 16384 = 1 << 14 is the first length whose varint takes three bytes: every field, and
    # the output's own length, just below, at and just above it.
    for n in range(16370, 16400):
        for result in (
            ChunkResult("i" * n, 1, "d"),
            ChunkResult("id", 1, "d" * n),
            ChunkResult("id", n, "d"),
            ChunkResult("id", 1, "d", PartialJson([Append("", "x" * n)], "")),
            ChunkResult("id", 1, "d", ReasoningText("id", "t", "", "m" * n, "", "loading")),
        ):
            encoded = _wire.chunk_response(result)
            assert encoded == _convert.chunk_response(result).SerializeToString(), n


@settings(max_examples=500)
@given(long_text, st.integers(0, 2**64 - 1), text)
def test_a_complete_text_answer_is_the_message_protobuf_builds(
    complete: str, last_sequence: int, processor_type: str
) -> None:
    encoded = _wire.complete_text_response(
        TextInfo(complete.encode(), last_sequence, processor_type)
    )
    expected = pb.GetCompleteTextResponse(
        text=complete, last_sequence=last_sequence, processor_type=processor_type
    )
    assert pb.GetCompleteTextResponse.FromString(encoded) == expected
    # Fields in number order, defaults left out: the very bytes protobuf writes.
    assert encoded == expected.SerializeToString()
