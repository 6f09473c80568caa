"""Duplicates of a live id: "its response has `duplicate = true`, nothing changes, and it
carries the same `delta` and `output` as the first time when the server still knows them
(else an empty delta and no output)" — `reset` included, and always echoing id and sequence."""

from __future__ import annotations

from server.engine import Mode
from server.store import RECENT_RESPONSES
from server.streams import Streams

APPEND, SNAPSHOT = Mode.APPEND, Mode.SNAPSHOT


def test_a_duplicate_repeats_the_first_answer_reset_included() -> None:
    parser = Streams()
    firsts = [
        parser.process("s", "abc", mode=SNAPSHOT, sequence=1),
        parser.process("s", "abcd", sequence=2),
        parser.process("s", "xy", sequence=3),  # a rewrite: reset
        parser.process("j", "[1,", processor_type="json", mode=APPEND, sequence=1),
        parser.process("j", ' "a', sequence=2),
    ]
    assert [r.reset for r in firsts] == [False, False, True, False, False]
    for first in firsts:
        again = parser.process(first.chunk_id, "ignored", sequence=first.sequence)
        assert again.duplicate
        assert (again.chunk_id, again.sequence) == (first.chunk_id, first.sequence)
        assert (again.delta, again.output, again.reset) == (first.delta, first.output, first.reset)
        assert again.reset is first.reset
    assert parser.complete_text("s").text == "xy"


def test_a_duplicate_of_an_answer_no_longer_kept_is_empty_but_echoes_id_and_sequence() -> None:
    parser = Streams()
    for sequence in range(1, RECENT_RESPONSES + 3):
        parser.process("id", f"{sequence},", mode=APPEND, sequence=sequence)
    old = parser.process("id", "1,", sequence=1)
    assert old.duplicate and (old.chunk_id, old.sequence) == ("id", 1)
    assert (old.delta, old.output, old.reset, old.error) == ("", None, False, None)
    assert parser.complete_text("id").text == "".join(
        f"{n}," for n in range(1, RECENT_RESPONSES + 3)
    )


def same_answer(again, first) -> None:
    assert again.duplicate and not first.duplicate
    assert (again.chunk_id, again.sequence) == (first.chunk_id, first.sequence)
    assert (again.delta, again.final, again.complete_text) == (
        first.delta,
        first.final,
        first.complete_text,
    )
    assert again.reset is first.reset
    assert again.output == first.output
    if first.output is not None and hasattr(first.output, "deltas"):
        # Set and Append are both tuples, equal when their fields are: compare kinds too.
        assert [type(op) for op in again.output.deltas] == [type(op) for op in first.output.deltas]
        assert again.output.value_json == first.output.value_json


def test_a_duplicate_of_a_json_answer_repeats_its_ops_of_each_kind() -> None:
    parser = Streams()
    first = parser.process("j", '{"a": "x', processor_type="json", mode=APPEND, sequence=1)
    assert {type(op).__name__ for op in first.output.deltas} == {"Set", "Append"}
    same_answer(parser.process("j", "", sequence=1), first)
    final = parser.process("j", 'y", "b": [1, true]}', sequence=2, final=True)
    assert final.output.value_json
    same_answer(parser.process("j", "", sequence=2, final=True), final)


def test_a_duplicate_of_a_final_repeats_it_reset_included() -> None:
    parser = Streams()
    parser.process("s", "abc", mode=SNAPSHOT, sequence=1)
    rewrite = parser.process("s", "xyz", sequence=2, final=True)
    assert rewrite.reset and rewrite.complete_text == "xyz"
    same_answer(parser.process("s", "xyz", sequence=2, final=True), rewrite)
    parser.process("t", "ab", mode=SNAPSHOT, sequence=1)
    grown = parser.process("t", "abc", sequence=2, final=True)
    assert not grown.reset
    same_answer(parser.process("t", "abc", sequence=2, final=True), grown)


def test_a_resent_request_below_the_final_repeats_only_the_complete_text() -> None:
    """ "After a `final` ... a resent request at or below it is a duplicate (repeating the
    final's `complete_text` when still known)": a final resend gets it, a plain one not."""
    parser = Streams()
    parser.process("id", "ab", mode=APPEND, sequence=1)
    parser.process("id", "cd", sequence=2, final=True)
    plain = parser.process("id", "ab", sequence=1)
    assert plain.duplicate and (plain.chunk_id, plain.sequence) == ("id", 1)
    assert (plain.delta, plain.output, plain.final, plain.complete_text) == ("", None, False, "")
    assert plain.reset is False
    final = parser.process("id", "ab", sequence=1, final=True)
    assert final.duplicate and (final.chunk_id, final.sequence) == ("id", 1)
    assert (final.delta, final.output, final.final, final.complete_text) == ("", None, True, "abcd")
