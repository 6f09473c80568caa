"""What the metrics read from the engine and the store: each session's text size (the
tracker's own is held in tests/test_engine_tracker.py), the ids tracked and their bytes,
and the id's session on every answer."""

from __future__ import annotations

from server.engine import Limits, Mode
from server.streams import Streams


def test_a_session_reports_its_tracker_text_bytes() -> None:
    streams = Streams()
    streams.process("s", "héllo", mode=Mode.SNAPSHOT)
    streams.process("a", "d€", mode=Mode.APPEND)
    sessions = {key[1]: state.session for key, state in streams.store._live.items()}
    assert sessions["s"].text_bytes == len("héllo".encode()) == 6
    assert sessions["a"].text_bytes == len("d€".encode()) == 4


def test_tracked_counts_live_applied_ids_and_their_text_bytes() -> None:
    streams = Streams(Limits(idle_ttl=60, max_text_bytes=8), clock=lambda: 0.0)
    assert streams.store.tracked() == (0, 0)
    streams.process("a", "abc", mode=Mode.APPEND)
    streams.process("b", "dé", mode=Mode.APPEND)
    assert streams.store.tracked() == (2, 3 + 3)
    # A first request refused for its text's size tracks nothing.
    assert streams.process("c", "x" * 9, mode=Mode.APPEND).error is not None
    assert streams.store.tracked() == (2, 6)
    assert streams.process("c", "x", mode=Mode.APPEND).error is None
    assert streams.store.tracked() == (3, 7)
    # A finished id is remembered for its sequence, not tracked.
    assert streams.process("b", "!", sequence=1, final=True).final
    assert streams.store.tracked() == (2, 4)
    streams.clear("a")
    assert streams.store.tracked() == (1, 1)
    streams.clear("c")
    assert streams.store.tracked() == (0, 0)


def test_an_answer_carries_the_session_of_the_id_it_reached() -> None:
    streams = Streams(Limits(idle_ttl=60), clock=lambda: 0.0)
    first = streams.answer("j", "[1", processor_type="json", mode=Mode.APPEND, sequence=1)
    assert first is not None and first.session is not None
    assert (first.session.processor_type, first.session.mode) == ("json", Mode.APPEND)
    # Refused for its processor: still the id's own session.
    other = streams.answer("j", "x", processor_type="plan")
    assert other is not None and other.result.error is not None
    assert other.session is first.session
    duplicate = streams.answer("j", "[1", sequence=1)
    assert duplicate is not None and duplicate.result.duplicate
    assert duplicate.session is first.session
    # Refused before any id was found: no session.
    empty = streams.answer("", "x")
    assert empty is not None and empty.session is None
    # A resend to a finished id: its session is gone.
    assert streams.process("j", "]", sequence=2, final=True).final
    finished = streams.answer("j", "]", sequence=2, final=True)
    assert finished is not None and finished.result.duplicate and finished.session is None


def test_an_id_whose_first_chunk_is_in_flight_is_not_tracked_yet() -> None:
    """Its session exists while the chunk is read, but nothing of it is applied: a scrape
    then counts the ids before it, not this one."""
    seen: list[tuple[int, int]] = []

    class Peeking:
        def __init__(self, chunk_id: str, *, max_json_depth: int) -> None:
            pass

        def process(self, new_text, *, final, complete_text):
            seen.append(streams.store.tracked())

    streams = Streams(processors={"peek": Peeking})
    streams.process("first", "abc", processor_type="peek")
    streams.process("second", "de", processor_type="peek")
    streams.process("first", "f")
    # A chunk in flight on an id already tracked may be counted or not.
    assert seen[:2] == [(0, 0), (1, 3)] and seen[2] in ((2, 5), (2, 6))
