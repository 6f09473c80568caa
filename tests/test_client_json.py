"""JsonBuilder: rebuilding a value from JsonDelta ops, alone and from a real server."""

from __future__ import annotations

import decimal
import json

import pytest
from helpers import chunkings

from client import (
    ChunkUpdate,
    ChunkwiseError,
    Client,
    JsonBuilder,
    JsonDelta,
    PartialJson,
    UnrepresentableValue,
)


def built(*deltas: JsonDelta) -> object:
    builder = JsonBuilder()
    builder.apply_deltas(deltas)
    return builder.value


def set_(path: str, value: str) -> JsonDelta:
    return JsonDelta(path, set_json=value)


def append(path: str, text: str) -> JsonDelta:
    return JsonDelta(path, append=text)


def test_the_contracts_example():
    value = built(
        set_("", "{}"),
        set_("/a", "[]"),
        set_("/a/0", '""'),
        append("/a/0", "xé"),
        set_("/a/1", "1"),
    )
    assert value == {"a": ["xé", 1]}


def test_pointer_escapes_and_a_root_string():
    value = built(
        set_("", "{}"), set_("/a~1b", "{}"), set_("/a~1b/~0k", '""'), append("/a~1b/~0k", "v")
    )
    assert value == {"a/b": {"~k": "v"}}
    assert built(set_("", '""'), append("", "ab"), append("", "c")) == "abc"


def test_a_repeated_key_replaces_its_value():
    assert built(set_("", "{}"), set_("/k", "1"), set_("/k", '"two"')) == {"k": "two"}


def test_nothing_before_the_value_begins_and_reset_starts_over():
    builder = JsonBuilder()
    assert not builder.has_value
    with pytest.raises(LookupError):
        _ = builder.value
    first = PartialJson(deltas=(set_("", "[]"), set_("/0", "1")))
    builder.apply(ChunkUpdate(chunk_id="j", sequence=1, output=first))
    assert builder.value == [1]
    builder.apply(ChunkUpdate(chunk_id="j", sequence=2, reset=True))
    assert not builder.has_value
    builder.apply(ChunkUpdate(chunk_id="j", sequence=3, output=PartialJson((set_("", "{}"),))))
    assert builder.value == {}


def test_ops_that_do_not_fit_the_value_are_value_errors():
    with pytest.raises(ValueError, match="no array element"):
        built(set_("", "[]"), set_("/1", "1"))
    with pytest.raises(ValueError, match="cannot append"):
        built(set_("", "[]"), set_("/0", "1"), append("/0", "x"))
    with pytest.raises(ValueError, match="not a JSON pointer"):
        built(set_("a", "1"))


def test_parse_float_keeps_every_digit():
    builder = JsonBuilder(parse_float=decimal.Decimal)
    builder.apply_deltas([set_("", "0.10000000000000000000001")])
    assert builder.value == decimal.Decimal("0.10000000000000000000001")


DOCUMENT = '{"name": "a\\"b\\u00e9", "list": [1, -2.5e3, true, null, {"deep": []}], "empty": {}}'


@pytest.mark.parametrize("mode", ["append", "snapshot"])
def test_updates_from_a_server_rebuild_the_document_for_any_chunking(grpc_server, mode):
    with Client(grpc_server.address) as chunkwise:
        for number, chunks in enumerate(chunkings(DOCUMENT, random_count=6)):
            if number % 7 and len(chunks) == 2:
                continue  # every seventh two-way split is plenty over gRPC
            if mode == "snapshot":
                chunks = [DOCUMENT[: len("".join(chunks[: i + 1]))] for i in range(len(chunks))]
            builder = JsonBuilder()
            for update in chunkwise.process(
                f"doc-{number}", chunks, processor_type="json", mode=mode
            ):
                assert update.error is None, update.error
                builder.apply(update)
            assert builder.value == json.loads(DOCUMENT), chunks


def test_an_integer_python_cannot_hold_raises_the_clients_own_error():
    number = "7" * 5000  # past int()'s 4,300 digits; the server passes it on as written
    builder = JsonBuilder()
    with pytest.raises(UnrepresentableValue) as info:
        builder.apply_deltas([set_("", "[]"), set_("/0", number)])
    assert isinstance(info.value, ChunkwiseError)
    assert isinstance(info.value, ValueError)  # what callers caught before
    assert info.value.code is None
    assert "'/0'" in str(info.value)
    assert builder.value == []  # nothing was set
    # A Decimal keeps every digit of a fraction of any length.
    exact = JsonBuilder(parse_float=decimal.Decimal)
    exact.apply_deltas([set_("", number + ".5")])
    assert exact.value == decimal.Decimal(number + ".5")


def test_text_that_is_not_json_stays_a_plain_value_error():
    with pytest.raises(ValueError) as info:
        built(set_("", "[1,"))
    assert not isinstance(info.value, UnrepresentableValue)


def test_an_array_index_of_many_digits_is_no_element():
    with pytest.raises(ValueError, match="no array element") as info:
        built(set_("", "[]"), set_("/" + "1" * 5000, "1"))
    assert not isinstance(info.value, UnrepresentableValue)
    with pytest.raises(ValueError, match="no array element"):
        built(set_("", "[]"), set_("/\u0660", "1"))  # a digit, but not an ASCII one


def test_an_index_with_a_leading_zero_is_no_element():
    # RFC 6901: "01" is not an array index, though int() reads it as 1. With 100 elements
    # the token is no longer than an index may be, so only the leading zero refuses it.
    elements = [set_("", "[]"), *(set_(f"/{i}", str(i)) for i in range(100))]
    assert built(*elements) == list(range(100))
    for token in ("01", "00", "010", "099"):
        with pytest.raises(ValueError, match="no array element"):
            built(*elements, set_("/" + token, "3"))
    long = "1" * 5000
    with pytest.raises(ValueError) as info:
        built(set_("", "[]"), set_("/" + long, "1"))
    # The message quotes the start of the token, not all of it.
    assert str(info.value) == f"no array element {long[:20]!r}"


def test_a_set_at_an_existing_index_replaces_that_element():
    assert built(set_("", "[]"), set_("/0", "1"), set_("/1", "2"), set_("/0", '"x"')) == ["x", 2]


def test_an_empty_append_changes_nothing():
    assert built(set_("", '""'), append("", "")) == ""
    assert built(set_("", "{}"), set_("/k", '""'), append("/k", "a"), append("/k", "")) == {
        "k": "a"
    }


def test_errors_name_the_path_and_the_type_that_did_not_fit():
    with pytest.raises(ValueError, match=r"^/a/b is not a container$"):
        built(set_("", "{}"), set_("/a", "{}"), set_("/a/b", "1"), set_("/a/b/c", "2"))
    with pytest.raises(ValueError, match=r"^cannot append text to int$"):
        built(set_("", "[]"), set_("/0", "1"), append("/0", "x"))
    with pytest.raises(ValueError, match=r"^cannot append text to NoneType$"):
        built(set_("", "null"), append("", "x"))
