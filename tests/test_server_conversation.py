"""The contract's ProcessChunks conversation over gRPC: every processor in every mode.

Expected values are written out from the contract by hand. The same fragments are sent as
fragments (APPEND) or as growing snapshots (AUTO, SNAPSHOT, UNSPECIFIED); every mode must
then report the fragments as deltas and the same outputs.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from itertools import accumulate

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT, Conversation

UNSPECIFIED = pb.DELTA_MODE_UNSPECIFIED
AUTO = pb.DELTA_MODE_AUTO
APPEND = pb.DELTA_MODE_APPEND
SNAPSHOT = pb.DELTA_MODE_SNAPSHOT
MODES = {"unspecified": UNSPECIFIED, "auto": AUTO, "append": APPEND, "snapshot": SNAPSHOT}


def chunks_for(mode: int, fragments: list[str]) -> list[str]:
    return fragments if mode == APPEND else list(accumulate(fragments))


def send_all(
    conversation: Conversation, chunk_id: str, processor: str, mode: int, fragments: list[str]
) -> list[pb.ProcessChunksResponse]:
    """Send the fragments in `mode` as one id, numbered from 1, the last one final."""
    chunks = chunks_for(mode, fragments)
    responses = []
    for number, chunk in enumerate(chunks, start=1):
        response = conversation.send(
            chunk_id,
            chunk,
            processor_type=processor if number == 1 else "",
            mode=mode if number == 1 else UNSPECIFIED,
            sequence=number,
            final=number == len(chunks),
        )
        assert (response.chunk_id, response.sequence) == (chunk_id, number)
        assert not response.HasField("error"), response.error
        assert not response.reset and not response.duplicate
        responses.append(response)
    return responses


def json_ops(response: pb.ProcessChunksResponse) -> list[tuple[str, str, str]]:
    """(op, path, value) of a response's JSON deltas, runs of appends to one path merged:
    how an engine splits appended text between operations is its own choice."""
    if not response.HasField("output"):
        return []
    assert response.output.WhichOneof("kind") == "json"
    ops: list[tuple[str, str, str]] = []
    for delta in response.output.json.deltas:
        op = delta.WhichOneof("op")
        value = getattr(delta, op)
        if op == "append" and ops and ops[-1][:2] == ("append", delta.path):
            ops[-1] = ("append", delta.path, ops[-1][2] + value)
        else:
            ops.append((op, delta.path, value))
    return ops


def assert_forgotten(stub: pb_grpc.StreamingParserStub, chunk_id: str) -> None:
    with pytest.raises(grpc.RpcError) as error:
        stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id=chunk_id), timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
@pytest.mark.parametrize("processor", ["", "text"])
def test_text(conversation: Conversation, stub, processor: str, mode: int) -> None:
    fragments = ["Hel", "lo, ", "wörld ✓"]
    responses = send_all(conversation, "t1", processor, mode, fragments)
    assert [r.delta for r in responses] == fragments
    assert not any(r.HasField("output") for r in responses)
    assert [r.final for r in responses] == [False, False, True]
    assert [r.complete_text for r in responses] == ["", "", "Hello, wörld ✓"]
    assert_forgotten(stub, "t1")


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
def test_json(conversation: Conversation, stub, mode: int) -> None:
    fragments = ['{"city": "Par', 'is", "n": 12', ', "ok": [true, nu', "ll]}"]
    responses = send_all(conversation, "j1", "json", mode, fragments)
    assert [r.delta for r in responses] == fragments
    assert [json_ops(r) for r in responses] == [
        [("set_json", "", "{}"), ("set_json", "/city", '""'), ("append", "/city", "Par")],
        [("append", "/city", "is")],
        [("set_json", "/n", "12"), ("set_json", "/ok", "[]"), ("set_json", "/ok/0", "true")],
        [("set_json", "/ok/1", "null")],
    ]
    assert [r.output.json.value_json for r in responses[:-1]] == ["", "", ""]
    final = responses[-1]
    assert json.loads(final.output.json.value_json) == {
        "city": "Paris",
        "n": 12,
        "ok": [True, None],
    }
    assert final.complete_text == "".join(fragments)
    assert_forgotten(stub, "j1")


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
@pytest.mark.parametrize(
    ("processor", "key", "title"),
    [
        ("plan", "plan_markdown", "Creating a plan..."),
        ("search_data_catalog", "search_requirements", "Searching your data catalog..."),
    ],
)
def test_reasoning_text(
    conversation: Conversation, stub, processor: str, key: str, title: str, mode: int
) -> None:
    fragments = ['{"' + key[:4], key[4:] + '": "1. Look', " up\\n2. Answer", '"}']
    responses = send_all(conversation, "r1", processor, mode, fragments)
    assert [r.delta for r in responses] == fragments
    assert not responses[0].HasField("output"), "a partial key shows nothing"
    texts = [r.output.text for r in responses[1:]]
    assert all(r.output.WhichOneof("kind") == "text" for r in responses[1:])
    assert [(t.id, t.title, t.secondary_title) for t in texts] == [("r1", title, "")] * 3
    assert [t.message_chunk for t in texts] == ["1. Look", " up\n2. Answer", ""]
    assert [t.message for t in texts] == ["", "", "1. Look up\n2. Answer"]
    assert [t.status for t in texts] == ["loading", "loading", "completed"]
    assert_forgotten(stub, "r1")


def file_id(chunk_id: str, file_name: str, file_type: str) -> str:
    digest = hashlib.sha256(f"{chunk_id}:{file_name}:{file_type}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
@pytest.mark.parametrize(
    ("processor", "title"),
    [("metric", "Creating metric files..."), ("dashboard", "Creating dashboard files...")],
)
def test_reasoning_files(
    conversation: Conversation, stub, processor: str, title: str, mode: int
) -> None:
    fragments = [
        '{"files": [{"name": "sales.y',
        'ml", "yml_',
        'content": "name: sal',
        'es"}, {"name": "b.yml", "yml_content": "x: 1"}]}',
    ]
    responses = send_all(conversation, "f1", processor, mode, fragments)
    assert [r.delta for r in responses] == fragments
    assert not responses[0].HasField("output"), "a half-written name shows nothing"
    outputs = [r.output.file for r in responses[1:]]
    assert all(r.output.WhichOneof("kind") == "file" for r in responses[1:])
    assert [(o.id, o.title, o.secondary_title) for o in outputs] == [("f1", title, "")] * 3
    assert [o.status for o in outputs] == ["loading", "loading", "completed"]
    sales = file_id("f1", "sales.yml", processor)
    other = file_id("f1", "b.yml", processor)

    def files(output: pb.ReasoningFile) -> list[tuple]:
        return [
            (f.id, f.file_type, f.file_name, f.version_number, f.status, f.text_chunk, f.text)
            for f in output.files
        ]

    assert files(outputs[0]) == [(sales, processor, "sales.yml", 1, "loading", "", "")]
    assert files(outputs[1]) == [(sales, processor, "sales.yml", 1, "loading", "name: sal", "")]
    assert files(outputs[2]) == [
        (sales, processor, "sales.yml", 1, "completed", "es", "name: sales"),
        (other, processor, "b.yml", 1, "completed", "x: 1", "x: 1"),
    ]
    assert_forgotten(stub, "f1")


def test_list_processors(stub: pb_grpc.StreamingParserStub) -> None:
    response = stub.ListProcessors(pb.ListProcessorsRequest(), timeout=TIMEOUT)
    names = [p.name for p in response.processors]
    assert {"text", "json", "plan", "search_data_catalog", "metric", "dashboard"} <= set(names)
    assert names == sorted(names)
    assert all(p.description for p in response.processors)


class TestDeltaModes:
    def test_auto_takes_a_repeated_fragment_for_a_snapshot(self, conversation, stub) -> None:
        for mode in (AUTO, UNSPECIFIED):
            chunk_id = f"auto-{mode}"
            assert conversation.send(chunk_id, "ha", mode=mode).delta == "ha"
            assert conversation.send(chunk_id, "ha").delta == ""
            assert text_of(stub, chunk_id) == "ha"

    def test_auto_finds_the_last_chunk_inside_the_new_one(self, conversation, stub) -> None:
        assert conversation.send("a", "abc", mode=AUTO).delta == "abc"
        assert conversation.send("a", "xxabcde").delta == "de"
        assert conversation.send("a", "zz").delta == "zz"
        assert text_of(stub, "a") == "abcdezz"

    def test_an_empty_first_chunk_creates_the_id(self, conversation, stub) -> None:
        assert conversation.send("e", "").delta == ""
        assert text_of(stub, "e") == ""

    def test_append_never_loses_a_fragment(self, conversation, stub) -> None:
        assert conversation.send("p", "ha", mode=APPEND).delta == "ha"
        assert conversation.send("p", "ha").delta == "ha"
        assert text_of(stub, "p") == "haha"

    def test_snapshot_extends_repeats_and_rewrites(self, conversation, stub) -> None:
        steps = [
            ("Hel", "Hel", False),
            ("Hello", "lo", False),
            ("Hello", "", False),
            ("Help", "Help", True),
            ("He", "He", True),
        ]
        for chunk, delta, reset in steps:
            response = conversation.send("s", chunk, mode=SNAPSHOT)
            assert (response.delta, response.reset) == (delta, reset), chunk
        assert text_of(stub, "s") == "He"

    def test_a_rewrite_starts_the_json_output_over(self, conversation) -> None:
        first = conversation.send("sj", '{"a": "xy', processor_type="json", mode=SNAPSHOT)
        assert json_ops(first) == [
            ("set_json", "", "{}"),
            ("set_json", "/a", '""'),
            ("append", "/a", "xy"),
        ]
        rewrite = conversation.send("sj", "[1, ")
        assert (rewrite.reset, rewrite.delta) == (True, "[1, ")
        assert json_ops(rewrite) == [("set_json", "", "[]"), ("set_json", "/0", "1")]


def text_of(stub: pb_grpc.StreamingParserStub, chunk_id: str) -> str:
    return stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id=chunk_id), timeout=TIMEOUT).text


class TestSequences:
    def test_a_resent_request_is_a_duplicate_and_changes_nothing(self, conversation, stub) -> None:
        conversation.send("q", "a", mode=APPEND, sequence=1)
        second = conversation.send("q", "b", sequence=2)
        again = conversation.send("q", "b", sequence=2)
        assert (again.duplicate, again.delta, again.sequence) == (True, "b", 2)
        assert not second.duplicate
        older = conversation.send("q", "zzz", sequence=1)
        assert older.duplicate
        info = stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="q"), timeout=TIMEOUT)
        assert (info.text, info.last_sequence, info.processor_type) == ("ab", 2, "text")

    def test_a_duplicate_repeats_the_first_output(self, conversation) -> None:
        first = conversation.send("qj", '["x', processor_type="json", mode=APPEND, sequence=5)
        again = conversation.send("qj", '["x', sequence=5)
        assert again.duplicate
        assert json_ops(again) == json_ops(first) != []

    def test_a_final_is_remembered_then_the_id_can_be_reused(self, conversation, stub) -> None:
        conversation.send("qf", "ab", mode=APPEND, sequence=1)
        final = conversation.send("qf", "c", sequence=2, final=True)
        assert (final.final, final.complete_text) == (True, "abc")
        assert_forgotten(stub, "qf")
        again = conversation.send("qf", "c", sequence=2, final=True)
        assert (again.duplicate, again.complete_text) == (True, "abc")
        assert_forgotten(stub, "qf")
        fresh = conversation.send("qf", "new", sequence=0)
        assert (fresh.duplicate, fresh.delta) == (False, "new")
        assert text_of(stub, "qf") == "new"

    def test_unnumbered_requests_are_never_duplicates(self, conversation, stub) -> None:
        for _ in range(3):
            assert not conversation.send("u", "x", mode=APPEND).duplicate
        assert text_of(stub, "u") == "xxx"
