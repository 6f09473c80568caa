"""The client's models against the proto descriptor, so that a field added to the proto
cannot be forgotten by the models or by the conversion that fills them.

The descriptor is the reference: each message the client returns as a model has a field for
every proto field (under the same name, or one in RENAMED) and nothing else; each response
message is either mirrored by a model or read for one plain value. Then a message with every
field set, built from the descriptor, is converted, and every model field must hold what its
proto field held.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

import pytest
from chunkwise.v1 import streaming_pb2 as pb
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

import client
from client import _convert

# Which model mirrors which proto message.
MODELS: dict[str, type] = {
    "ProcessChunksResponse": client.ChunkUpdate,
    "Error": client.UpdateError,
    "ReasoningText": client.ReasoningText,
    "ReasoningFile": client.ReasoningFile,
    "FileDelta": client.FileDelta,
    "PartialJson": client.PartialJson,
    "JsonDelta": client.JsonDelta,
    "GetCompleteTextResponse": client.TextInfo,
    "ProcessorInfo": client.ProcessorInfo,
}
# A proto field whose model field has another name: (message, proto field) -> model field.
# None so far; a rename goes here, with the reason beside it.
RENAMED: dict[tuple[str, str], str] = {}
# Messages that are only a oneof: the model is the set member's, one of the union's types.
ONEOF_ONLY: dict[str, Any] = {"ProcessedOutput": client.Output}
# Responses the client gives back as one plain value, and the fields it reads for it
# (``clear_chunk`` returns ``cleared``, ``list_processors`` the list): a new field here
# needs a model first.
PLAIN_VALUES: dict[str, list[str]] = {
    "ClearChunkResponse": ["cleared"],
    "ListProcessorsResponse": ["processors"],
}
# Request fields that ``send`` does not take from its caller, and why.
SET_BY_THE_CLIENT = {"sequence": "numbered per id by the client, so that resends are safe"}

MESSAGES = pb.DESCRIPTOR.message_types_by_name


def model_field(message: str, field: str) -> str:
    return RENAMED.get((message, field), field)


def reachable_from_responses() -> set[str]:
    """Every message a response holds, at any depth, the responses included."""
    seen: set[str] = set()
    todo = [name for name in MESSAGES if name.endswith("Response")]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [f.message_type.name for f in MESSAGES[name].fields if f.message_type]
    return seen


def test_every_message_a_response_holds_is_mirrored_or_read_as_a_plain_value():
    covered = MODELS.keys() | ONEOF_ONLY.keys() | PLAIN_VALUES.keys()
    assert reachable_from_responses() <= covered
    assert MODELS.keys() <= reachable_from_responses()


@pytest.mark.parametrize("message", sorted(MODELS))
def test_a_model_has_a_field_for_every_proto_field_and_no_other(message: str):
    proto = [model_field(message, field.name) for field in MESSAGES[message].fields]
    model = [field.name for field in dataclasses.fields(MODELS[message])]
    assert sorted(model) == sorted(proto)


def test_every_rename_names_a_real_proto_field():
    for message, field in RENAMED:
        assert field in MESSAGES[message].fields_by_name, (message, field)


def test_a_oneof_only_message_is_the_union_of_its_members_models():
    for message, union in ONEOF_ONLY.items():
        descriptor = MESSAGES[message]
        (oneof,) = descriptor.oneofs
        assert [field.name for field in oneof.fields] == [f.name for f in descriptor.fields]
        members = {MODELS[field.message_type.name] for field in oneof.fields}
        assert members == set(typing.get_args(union))


def test_a_response_read_as_a_plain_value_has_only_the_fields_read():
    for message, fields in PLAIN_VALUES.items():
        assert [field.name for field in MESSAGES[message].fields] == fields


def test_send_takes_every_request_field_but_the_ones_the_client_sets():
    fields = {field.name for field in MESSAGES["ProcessChunksRequest"].fields}
    for stream in (client.Stream, client.AsyncStream):
        parameters = set(inspect.signature(stream.send).parameters) - {"self"}
        assert parameters == fields - SET_BY_THE_CLIENT.keys(), stream.__name__


# --- conversion ------------------------------------------------------------------------------


def variants(descriptor: Descriptor) -> int:
    """How many messages it takes to set each member of every oneof, at any depth, once."""
    counts = [len(oneof.fields) for oneof in descriptor.oneofs]
    counts += [variants(field.message_type) for field in descriptor.fields if field.message_type]
    return max(counts, default=1)


def scalar(field: FieldDescriptor) -> Any:
    """A value unlike any default and, within its message, unlike its neighbours'."""
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"{field.full_name} ✓"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    return 1000 + field.number


def populated(descriptor: Descriptor, variant: int) -> Message:
    """A message with every field set: of each oneof the member ``variant`` picks, of a
    repeated message one element per variant (at least two)."""
    message = getattr(pb, descriptor.name)()
    chosen = {oneof.fields[variant % len(oneof.fields)] for oneof in descriptor.oneofs}
    for field in descriptor.fields:
        if field.containing_oneof is not None and field not in chosen:
            continue
        if field.message_type is None:
            value = scalar(field)
            if field.is_repeated:
                getattr(message, field.name).extend([value, value])
            else:
                setattr(message, field.name, value)
        elif field.is_repeated:
            count = max(2, variants(field.message_type))
            elements = [populated(field.message_type, v) for v in range(count)]
            getattr(message, field.name).extend(elements)
        else:
            getattr(message, field.name).CopyFrom(populated(field.message_type, variant))
    return message


def assert_mirrors(message: Message, value: Any, filled: set[tuple[str, str]]) -> None:
    """``value`` holds exactly what ``message`` holds; notes each model field that was set."""
    name = message.DESCRIPTOR.name
    if name in ONEOF_ONLY:
        (oneof,) = message.DESCRIPTOR.oneofs
        assert_mirrors(getattr(message, message.WhichOneof(oneof.name)), value, filled)
        return
    model = MODELS[name]
    assert type(value) is model, name
    for field in message.DESCRIPTOR.fields:
        attribute = model_field(name, field.name)
        got, sent = getattr(value, attribute), getattr(message, field.name)
        where = f"{model.__name__}.{attribute}"
        oneof = field.containing_oneof
        if oneof is not None and message.WhichOneof(oneof.name) != field.name:
            assert got is None, where
            continue
        if field.message_type is None:
            assert got == (tuple(sent) if field.is_repeated else sent), where
        elif field.is_repeated:
            assert isinstance(got, tuple) and len(got) == len(sent), where
            for element, converted in zip(sent, got, strict=True):
                assert_mirrors(element, converted, filled)
        else:
            assert_mirrors(sent, got, filled)
        filled.add((model.__name__, attribute))


def test_the_conversion_fills_every_model_field_with_its_proto_field():
    filled: set[tuple[str, str]] = set()
    conversions = [
        (MESSAGES["ProcessChunksResponse"], _convert.chunk_update),
        (MESSAGES["GetCompleteTextResponse"], _convert.text_info),
    ]
    for descriptor, convert in conversions:
        for variant in range(variants(descriptor)):
            message = populated(descriptor, variant)
            assert_mirrors(message, convert(message), filled)
    listed = populated(MESSAGES["ListProcessorsResponse"], 0)
    infos = _convert.processors(listed)
    assert len(infos) == len(listed.processors) == 2
    for info, converted in zip(listed.processors, infos, strict=True):
        assert_mirrors(info, converted, filled)
    every_field = {
        (model.__name__, field.name)
        for model in MODELS.values()
        for field in dataclasses.fields(model)
    }
    assert every_field - filled == set()
