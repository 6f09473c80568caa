"""What a chunk reserves for the tracked text (Tracker.growth_bound), as docs/limits.md
gives it: "9/8 x its UTF-8 (+ the chunk itself, in AUTO and SNAPSHOT)". SNAPSHOT keeps the
snapshot string itself, so it reserves the chunk as a str. A code point takes at most 4
bytes of UTF-8: a chunk that is not ASCII is reserved at 4 bytes a character."""

from __future__ import annotations

import sys

import pytest

from server.engine._tracker import Mode, Tracker


def rate(mode: Mode, char: str, held: str = "") -> float:
    """What each more character of `char` reserves, after `held` was added."""
    tracker = Tracker(mode)
    if held:
        tracker.add(held)
    short, long = char * 1000, char * 9000
    return (tracker.growth_bound(long) - tracker.growth_bound(short)) / 8000


@pytest.mark.parametrize("held", ["", "x" * 5000, "é" * 3000])
def test_append_reserves_9_8_of_the_utf8_at_most(held):
    assert rate(Mode.APPEND, "a", held) == 9 / 8
    assert rate(Mode.APPEND, "é", held) == 4 * 9 / 8
    assert rate(Mode.APPEND, "😀", held) == 4 * 9 / 8


@pytest.mark.parametrize("held", ["", "x" * 5000])
def test_auto_also_reserves_the_chunk_it_keeps_as_the_last_seen(held):
    for char in ["a", "é", "😀"]:
        kept = (sys.getsizeof(char * 9000) - sys.getsizeof(char * 1000)) / 8000
        assert rate(Mode.AUTO, char, held) == rate(Mode.APPEND, char, held) + kept


@pytest.mark.parametrize("held", ["", "x" * 5000])
@pytest.mark.parametrize("chunk", ["", "a", "a" * 3000, "é" * 100, "😀" * 50])
def test_snapshot_reserves_the_snapshot_string(held, chunk):
    tracker = Tracker(Mode.SNAPSHOT)
    if held:
        tracker.add(held)
    assert tracker.growth_bound(chunk) == sys.getsizeof(chunk)


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("piece", ["a", "a" * 100, "é" * 100, "😀" * 7, "a" * 40_000])
def test_a_reservation_covers_what_the_chunk_adds(mode, piece):
    """The reservation is never passed: held_bytes grows by at most it. Chunks are
    fragments in APPEND, and the text so far in AUTO and SNAPSHOT."""
    tracker, text = Tracker(mode), ""
    for k in range(6):
        text += piece + str(k)
        chunk = text if mode is not Mode.APPEND else piece + str(k)
        held, bound = tracker.held_bytes, tracker.growth_bound(chunk)
        tracker.add(chunk)
        assert tracker.text == text
        assert tracker.held_bytes - held <= bound


@pytest.mark.parametrize("mode", [Mode.APPEND, Mode.AUTO])
@pytest.mark.parametrize("chunk", ["", "a", "a" * 1000, "é" * 250])
def test_a_chunk_on_a_long_text_reserves_for_itself_not_the_text_again(mode, chunk):
    """A chunk reserves 9/8 of its own UTF-8 (4 bytes a character unless ASCII), plus at
    most the eighth of the text that the buffer may over-allocate: never the text again.
    The reservation is a number of bytes."""
    for held in ["x" * 100_000, "x" * 100_003, "é" * 40_000]:
        tracker = Tracker(mode)
        tracker.add(held)
        bound = tracker.growth_bound(chunk)
        assert isinstance(bound, int)
        utf8 = len(chunk) if chunk.isascii() else 4 * len(chunk)
        kept = sys.getsizeof(chunk) if mode is Mode.AUTO else 0
        assert 9 * utf8 // 8 + kept <= bound <= 9 * utf8 // 8 + kept + len(held.encode()) // 8 + 100
