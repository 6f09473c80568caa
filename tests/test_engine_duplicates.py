"""Duplicates of a live id: "its response has `duplicate = true`, nothing changes, and it
carries the same `delta` and `output` as the first time when the server still knows them
(else an empty delta and no output)" — `reset` included, and always echoing id and sequence."""

from __future__ import annotations

from server.engine import StreamingParser
from server.engine._store import RECENT_RESPONSES

APPEND, SNAPSHOT = 2, 3


def test_a_duplicate_repeats_the_first_answer_reset_included() -> None:
    parser = StreamingParser()
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
    parser = StreamingParser()
    for sequence in range(1, RECENT_RESPONSES + 3):
        parser.process("id", f"{sequence},", mode=APPEND, sequence=sequence)
    old = parser.process("id", "1,", sequence=1)
    assert old.duplicate and (old.chunk_id, old.sequence) == ("id", 1)
    assert (old.delta, old.output, old.reset, old.error) == ("", None, False, None)
    assert parser.complete_text("id").text == "".join(
        f"{n}," for n in range(1, RECENT_RESPONSES + 3)
    )
