"""Every error of the contract over gRPC: the right code, nothing changed, the stream goes on."""

from __future__ import annotations

import logging

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT, Conversation, InProcessServer

from server.streams import Streams

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
INTERNAL = grpc.StatusCode.INTERNAL.value[0]
APPEND = pb.DELTA_MODE_APPEND
SNAPSHOT = pb.DELTA_MODE_SNAPSHOT
MiB = 1 << 20


def text_of(stub: pb_grpc.StreamingParserStub, chunk_id: str) -> str:
    return stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id=chunk_id), timeout=TIMEOUT).text


def unary_code(call, request) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=TIMEOUT)
    return error.value.code()


def assert_still_usable(conversation: Conversation, stub) -> None:
    """The stream answers the next request as if nothing had happened."""
    response = conversation.send("after-error", "ok", mode=APPEND)
    assert (response.delta, response.HasField("error")) == ("ok", False)
    assert text_of(stub, "after-error").endswith("ok")


def assert_refused(response: pb.ProcessChunksResponse, code: int, chunk_id: str, seq: int = 0):
    assert response.HasField("error")
    assert response.error.code == code, response.error
    assert response.error.message
    assert (response.chunk_id, response.sequence, response.delta) == (chunk_id, seq, "")
    assert not response.HasField("output")


class TestRefusedRequests:
    def test_empty_chunk_id(self, conversation, stub) -> None:
        assert_refused(conversation.send("", "x", sequence=4), INVALID_ARGUMENT, "", 4)
        assert_still_usable(conversation, stub)

    def test_unknown_processor(self, conversation, stub) -> None:
        response = conversation.send("x", "{}", processor_type="no-such-processor")
        assert_refused(response, INVALID_ARGUMENT, "x")
        assert unary_code(stub.GetCompleteText, pb.GetCompleteTextRequest(chunk_id="x")) == (
            grpc.StatusCode.NOT_FOUND
        )
        assert_still_usable(conversation, stub)

    def test_chunk_id_longer_than_256_bytes(self, conversation, stub) -> None:
        longest = "é" * 128
        assert not conversation.send(longest, "fits").HasField("error")
        assert_refused(conversation.send(longest + "a", "x"), INVALID_ARGUMENT, longest + "a")
        assert_still_usable(conversation, stub)

    def test_another_processor_for_a_tracked_id(self, conversation, stub) -> None:
        conversation.send("p", "[1", processor_type="json", mode=APPEND)
        assert_refused(conversation.send("p", "x", processor_type="text"), FAILED_PRECONDITION, "p")
        assert not conversation.send("p", ", 2", processor_type="json").HasField("error")
        assert not conversation.send("p", "]").HasField("error")
        assert text_of(stub, "p") == "[1, 2]"
        assert_still_usable(conversation, stub)

    def test_another_mode_for_a_tracked_id(self, conversation, stub) -> None:
        conversation.send("m", "ab", mode=APPEND)
        assert_refused(conversation.send("m", "abc", mode=SNAPSHOT), FAILED_PRECONDITION, "m")
        assert conversation.send("m", "c", mode=APPEND).delta == "c"
        assert text_of(stub, "m") == "abc"
        assert_still_usable(conversation, stub)

    @pytest.mark.parametrize("mode", [4, 7, 1000])
    def test_a_mode_outside_the_enum_for_a_new_and_a_tracked_id(
        self, conversation, stub, mode: int
    ) -> None:
        assert_refused(conversation.send("new", "x", mode=mode), INVALID_ARGUMENT, "new")
        assert unary_code(stub.GetCompleteText, pb.GetCompleteTextRequest(chunk_id="new")) == (
            grpc.StatusCode.NOT_FOUND
        )
        conversation.send("old", "x", mode=APPEND)
        assert_refused(conversation.send("old", "y", mode=mode), INVALID_ARGUMENT, "old")
        assert text_of(stub, "old") == "x"
        assert_still_usable(conversation, stub)

    def test_a_chunk_just_over_one_mib(self, conversation, stub) -> None:
        response = conversation.send("big", "x" * MiB, mode=APPEND)
        assert (len(response.delta), response.HasField("error")) == (MiB, False)
        assert_refused(conversation.send("big", "y" * (MiB + 1)), RESOURCE_EXHAUSTED, "big")
        assert text_of(stub, "big") == "x" * MiB
        assert_still_usable(conversation, stub)

    def test_a_chunk_over_one_mib_in_utf8_bytes(self, conversation, stub) -> None:
        # 2-byte characters: fewer than 1 Mi characters, more than 1 MiB.
        chunk = "é" * (MiB // 2 + 1)
        assert_refused(conversation.send("wide", chunk), RESOURCE_EXHAUSTED, "wide")
        assert_still_usable(conversation, stub)

    def test_complete_text_past_its_limit(self, server_factory) -> None:
        server = server_factory(max_text_bytes=10)
        with server.channel() as channel:
            stub = pb_grpc.StreamingParserStub(channel)
            conversation = Conversation(stub)
            assert conversation.send("t", "12345678", mode=APPEND).delta == "12345678"
            assert_refused(conversation.send("t", "abc"), RESOURCE_EXHAUSTED, "t")
            assert text_of(stub, "t") == "12345678"
            assert conversation.send("t", "ab").delta == "ab"
            conversation.close()

    def test_too_many_ids(self, server_factory) -> None:
        server = server_factory(max_ids=2)
        with server.channel() as channel:
            stub = pb_grpc.StreamingParserStub(channel)
            conversation = Conversation(stub)
            conversation.send("a", "1")
            conversation.send("b", "2")
            assert_refused(conversation.send("c", "3"), RESOURCE_EXHAUSTED, "c")
            assert conversation.send("a", "11").delta == "1", "a tracked id is still served"
            stub.ClearChunk(pb.ClearChunkRequest(chunk_id="a"), timeout=TIMEOUT)
            assert conversation.send("c", "3").delta == "3"
            conversation.close()


class TestInvalidJson:
    @pytest.mark.parametrize(
        ("fragments", "offset"),
        [
            (['{"a": tr', "ue, }"], 12),
            (["[1, 2]", " x"], 7),
            (["[NaN]"], 1),
            (["{'a': 1}"], 1),
        ],
    )
    def test_the_text_is_tracked_and_the_error_names_the_offset(
        self, conversation, stub, fragments: list[str], offset: int
    ) -> None:
        responses = [
            conversation.send("bad", fragment, processor_type="json", mode=APPEND, sequence=n)
            for n, fragment in enumerate(fragments, start=1)
        ]
        assert [r.HasField("error") for r in responses[:-1]] == [False] * (len(fragments) - 1)
        last = responses[-1]
        assert last.delta == fragments[-1]
        assert last.error.code == INVALID_ARGUMENT
        assert f"at offset {offset}" in last.error.message
        later = conversation.send("bad", " more", sequence=len(fragments) + 1)
        assert (later.delta, later.HasField("error"), later.HasField("output")) == (
            " more",
            False,
            False,
        )
        info = stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="bad"), timeout=TIMEOUT)
        assert (info.text, info.last_sequence) == ("".join(fragments) + " more", len(fragments) + 1)
        assert_still_usable(conversation, stub)

    def test_nesting_past_the_depth_limit(self, conversation, stub) -> None:
        deepest = conversation.send("deep", "[" * 512, processor_type="json", mode=APPEND)
        assert not deepest.HasField("error")
        too_deep = conversation.send("deep", "[")
        assert too_deep.error.code == INVALID_ARGUMENT
        assert "at offset 512" in too_deep.error.message
        assert text_of(stub, "deep") == "[" * 513
        assert_still_usable(conversation, stub)

    def test_a_final_chunk_on_unfinished_json(self, conversation, stub) -> None:
        conversation.send("u", '{"a": [1', processor_type="json", mode=APPEND)
        final = conversation.send("u", "", final=True)
        assert (final.final, final.complete_text) == (True, '{"a": [1')
        assert final.error.code == INVALID_ARGUMENT
        assert "unexpected end of JSON at offset 8" in final.error.message
        assert unary_code(stub.GetCompleteText, pb.GetCompleteTextRequest(chunk_id="u")) == (
            grpc.StatusCode.NOT_FOUND
        )
        assert_still_usable(conversation, stub)


class TestUnaryCalls:
    def test_get_complete_text_of_an_untracked_id(self, stub) -> None:
        request = pb.GetCompleteTextRequest(chunk_id="nobody")
        assert unary_code(stub.GetCompleteText, request) == grpc.StatusCode.NOT_FOUND

    @pytest.mark.parametrize("chunk_id", ["", "x" * 257])
    def test_a_bad_chunk_id(self, stub, chunk_id: str) -> None:
        assert unary_code(stub.GetCompleteText, pb.GetCompleteTextRequest(chunk_id=chunk_id)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        assert unary_code(stub.ClearChunk, pb.ClearChunkRequest(chunk_id=chunk_id)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )

    def test_clear_chunk_is_idempotent(self, conversation, stub) -> None:
        conversation.send("c", "text")
        clear = pb.ClearChunkRequest(chunk_id="c")
        assert stub.ClearChunk(clear, timeout=TIMEOUT).cleared is True
        assert stub.ClearChunk(clear, timeout=TIMEOUT).cleared is False
        assert unary_code(stub.GetCompleteText, pb.GetCompleteTextRequest(chunk_id="c")) == (
            grpc.StatusCode.NOT_FOUND
        )
        assert (
            stub.ClearChunk(pb.ClearChunkRequest(chunk_id="never"), timeout=TIMEOUT).cleared
            is False
        )

    def test_clear_chunk_forgets_the_remembered_sequence(self, conversation, stub) -> None:
        conversation.send("c", "a", sequence=9, final=True)
        assert conversation.send("c", "a", sequence=9).duplicate
        stub.ClearChunk(pb.ClearChunkRequest(chunk_id="c"), timeout=TIMEOUT)
        again = conversation.send("c", "b", sequence=9)
        assert (again.duplicate, again.delta) == (False, "b")


class _BrokenStreams(Streams):
    """Streams with a bug: every call raises an exception that quotes the caller's text."""

    def answer(self, chunk_id: str, chunk: str, **options):
        raise RuntimeError(f"secret {chunk}")

    def complete_text(self, chunk_id: str, **options):
        raise RuntimeError(f"secret {chunk_id}")


def test_a_bug_is_internal_and_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    from server._logging import KeyValueFormatter
    from server.config import Config

    server = InProcessServer(Config(), _BrokenStreams())
    try:
        with server.channel() as channel:
            stub = pb_grpc.StreamingParserStub(channel)
            conversation = Conversation(stub)
            response = conversation.send("id", "payload-text", sequence=3, final=True)
            # Refused, so not final, even for a final request: the id stays open.
            assert (response.chunk_id, response.sequence, response.final) == ("id", 3, False)
            assert response.error.code == INTERNAL
            assert "payload-text" not in response.error.message
            second = conversation.send("id", "more payload-text")
            assert second.error.code == INTERNAL, "the stream goes on after a bug"
            conversation.close()
            with pytest.raises(grpc.RpcError) as error:
                stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="id-text"), timeout=TIMEOUT)
            assert error.value.code() == grpc.StatusCode.INTERNAL
            assert "id-text" not in (error.value.details() or "")
    finally:
        server.close()
    # An earlier test may have set the server's INFO level: its access lines are not errors.
    records = [r for r in caplog.records if r.name.startswith("chunkwise")]
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert len(errors) == 3
    assert all("exc_type=RuntimeError" in KeyValueFormatter().format(r) for r in errors)
    lines = [KeyValueFormatter().format(r) for r in records]
    assert not any("payload-text" in line or "id-text" in line for line in lines)
