"""Duplicates of a live id: "its response has `duplicate = true`, nothing changes, and it
carries the same `delta` and `output` as the first time when the server still knows them
(else an empty delta and no output)" — `reset` included, and always echoing id and sequence.

Responses are read as a client reads them: decoded from the bytes the servicer sends."""

from __future__ import annotations

from chunkwise.v1 import streaming_pb2 as pb

from server.engine import Mode
from server.store import RECENT_RESPONSES
from server.streams import Answer, Streams

APPEND, SNAPSHOT = Mode.APPEND, Mode.SNAPSHOT


def message(answer: Answer | None) -> pb.ProcessChunksResponse:
    assert answer is not None
    return pb.ProcessChunksResponse.FromString(answer.response)


def same_answer(again: Answer | None, first: Answer | None) -> None:
    """The duplicate's response is the first one, field for field, marked a duplicate."""
    expected, got = message(first), message(again)
    assert not expected.duplicate and got.duplicate
    expected.duplicate = True
    assert got == expected
    assert got.output.WhichOneof("kind") == expected.output.WhichOneof("kind")
    assert again is not None and again.result.duplicate


def test_a_duplicate_repeats_the_first_answer_reset_included() -> None:
    streams = Streams()
    firsts = [
        streams.answer("s", "abc", mode=SNAPSHOT, sequence=1),
        streams.answer("s", "abcd", sequence=2),
        streams.answer("s", "xy", sequence=3),  # a rewrite: reset
        streams.answer("j", "[1,", processor_type="json", mode=APPEND, sequence=1),
        streams.answer("j", ' "a', sequence=2),
    ]
    assert [message(a).reset for a in firsts] == [False, False, True, False, False]
    assert [message(a).delta for a in firsts] == ["abc", "d", "xy", "[1,", ' "a']
    for first in firsts:
        assert first is not None
        result = first.result
        same_answer(streams.answer(result.chunk_id, "ignored", sequence=result.sequence), first)
    assert streams.complete_text("s").text == "xy"


def test_a_duplicate_of_an_answer_no_longer_kept_is_empty_but_echoes_id_and_sequence() -> None:
    streams = Streams()
    for sequence in range(1, RECENT_RESPONSES + 3):
        streams.process("id", f"{sequence},", mode=APPEND, sequence=sequence)
    old = message(streams.answer("id", "1,", sequence=1))
    assert old == pb.ProcessChunksResponse(chunk_id="id", sequence=1, duplicate=True)
    recent = message(streams.answer("id", "x", sequence=RECENT_RESPONSES + 2))
    assert recent.delta == f"{RECENT_RESPONSES + 2}," and recent.duplicate
    assert streams.complete_text("id").text == "".join(
        f"{n}," for n in range(1, RECENT_RESPONSES + 3)
    )


def test_a_duplicate_of_a_json_answer_repeats_its_ops_of_each_kind() -> None:
    streams = Streams()
    first = streams.answer("j", '{"a": "x', processor_type="json", mode=APPEND, sequence=1)
    kinds = {d.WhichOneof("op") for d in message(first).output.json.deltas}
    assert kinds == {"append", "set_json"}
    same_answer(streams.answer("j", "", sequence=1), first)
    final = streams.answer("j", 'y", "b": [1, true]}', sequence=2, final=True)
    assert message(final).output.json.value_json
    same_answer(streams.answer("j", "", sequence=2, final=True), final)


def test_a_duplicate_of_a_final_repeats_it_reset_included() -> None:
    streams = Streams()
    streams.process("s", "abc", mode=SNAPSHOT, sequence=1)
    rewrite = streams.answer("s", "xyz", sequence=2, final=True)
    assert message(rewrite).reset and message(rewrite).complete_text == "xyz"
    same_answer(streams.answer("s", "xyz", sequence=2, final=True), rewrite)
    streams.process("t", "ab", mode=SNAPSHOT, sequence=1)
    grown = streams.answer("t", "abc", sequence=2, final=True)
    assert not message(grown).reset
    same_answer(streams.answer("t", "abc", sequence=2, final=True), grown)


def test_a_duplicate_of_an_answer_with_invalid_json_repeats_it_error_included() -> None:
    """Applied with an error: the duplicate is the very response the first request got."""
    streams = Streams()
    first = streams.answer("j", "[1, x", processor_type="json", mode=APPEND, sequence=1)
    assert message(first).error.message
    same_answer(streams.answer("j", "[1, x", sequence=1), first)


def test_a_resent_request_below_the_final_repeats_only_the_complete_text() -> None:
    """ "After a `final` ... a resent request at or below it is a duplicate (repeating the
    final's `complete_text` when still known)": a final resend gets it, a plain one not."""
    streams = Streams()
    streams.process("id", "ab", mode=APPEND, sequence=1)
    streams.process("id", "cd", sequence=2, final=True)
    plain = message(streams.answer("id", "ab", sequence=1))
    assert plain == pb.ProcessChunksResponse(chunk_id="id", sequence=1, duplicate=True)
    final = message(streams.answer("id", "ab", sequence=1, final=True))
    assert final == pb.ProcessChunksResponse(
        chunk_id="id", sequence=1, final=True, complete_text="abcd", duplicate=True
    )
