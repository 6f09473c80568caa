"""Tracker: the complete text of one id and the delta of each chunk, in each delta mode.

Every expected value below is worked out by hand from the contract's wording of the modes.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.engine import ResourceExhausted
from server.engine._tracker import Mode, Tracker


def run(mode: Mode, chunks: list[str]) -> tuple[list[str], str]:
    tracker = Tracker(mode)
    deltas = []
    for chunk in chunks:
        delta, reset = tracker.add(chunk)
        assert not reset or mode is Mode.SNAPSHOT
        deltas.append(delta)
    return deltas, tracker.text


# AUTO keeps `last_seen`, the last chunk whose delta was non-empty. For a chunk: last_seen
# empty -> the whole chunk; the chunk starts with last_seen -> the rest; last_seen inside
# the chunk -> what follows its first occurrence; else the whole chunk.
AUTO_CASES = [
    pytest.param(
        ["Hel", "Hello", "Hello, wo", "Hello, world"],
        ["Hel", "lo", ", wo", "rld"],
        "Hello, world",
        id="cumulative snapshots",
    ),
    pytest.param(
        ["Hel", "lo w", "orld"],
        ["Hel", "lo w", "orld"],
        "Hello world",
        id="plain fragments",
    ),
    pytest.param(
        ["abc", "xxabcdef"],
        ["abc", "def"],
        "abcdef",
        id="overlap in the middle",
    ),
    pytest.param(
        ["ha", "ha"],
        ["ha", ""],
        "ha",
        id="a repeated fragment is lost",
    ),
    pytest.param(
        ["ab", "xyabzab", "c"],
        ["ab", "zab", "c"],
        "abzabc",
        id="first occurrence is used",
    ),
    pytest.param(
        [""],
        [""],
        "",
        id="empty first chunk",
    ),
    pytest.param(
        ["", "", "abc", "abcd"],
        ["", "", "abc", "d"],
        "abcd",
        id="empty first chunks leave last_seen empty",
    ),
    pytest.param(
        ["ab", "", "abc"],
        ["ab", "", "c"],
        "abc",
        id="an empty chunk changes nothing",
    ),
    pytest.param(
        # "xab" ends with last_seen, so its delta is empty and last_seen stays "ab": the
        # next chunk "abz" starts with it.
        ["ab", "xab", "abz"],
        ["ab", "", "z"],
        "abz",
        id="last_seen moves only on a non-empty delta",
    ),
    pytest.param(
        ["hello", "hel"],
        ["hello", "hel"],
        "hellohel",
        id="a shorter snapshot is taken for a fragment",
    ),
    pytest.param(
        ["héllo", "héllo wörld 😀", "héllo wörld 😀!"],
        ["héllo", " wörld 😀", "!"],
        "héllo wörld 😀!",
        id="multi-byte characters, snapshots",
    ),
    pytest.param(
        ["😀", "é€", "😀"],
        ["😀", "é€", "😀"],
        "😀é€😀",
        id="multi-byte characters, fragments",
    ),
    pytest.param(
        ["€", "x€y"],
        ["€", "y"],
        "€y",
        id="multi-byte overlap in the middle",
    ),
]


@pytest.mark.parametrize("chunks,deltas,text", AUTO_CASES)
def test_auto_heuristic(chunks, deltas, text):
    assert run(Mode.AUTO, chunks) == (deltas, text)


@given(st.lists(st.text()))
def test_append_never_loses_a_character(chunks):
    deltas, text = run(Mode.APPEND, chunks)
    assert deltas == chunks
    assert text == "".join(chunks)


@given(st.lists(st.text()))
def test_snapshot_of_growing_text_gives_each_extension(fragments):
    tracker, text = Tracker(Mode.SNAPSHOT), ""
    for fragment in fragments:
        text += fragment
        assert tracker.add(text) == (fragment, False)
    assert tracker.text == text


@pytest.mark.parametrize(
    "chunks,expected,text",
    [
        pytest.param(["ab", "abc"], [("ab", False), ("c", False)], "abc", id="extension"),
        pytest.param(["abc", "abc"], [("abc", False), ("", False)], "abc", id="equal"),
        pytest.param(["abc", "abX"], [("abc", False), ("abX", True)], "abX", id="rewrite"),
        pytest.param(["abc", "ab"], [("abc", False), ("ab", True)], "ab", id="shorter"),
        pytest.param(["abc", ""], [("abc", False), ("", True)], "", id="emptied"),
        pytest.param(["", ""], [("", False), ("", False)], "", id="empty first"),
        pytest.param(
            ["é", "éé", "e"], [("é", False), ("é", False), ("e", True)], "e", id="multi-byte"
        ),
    ],
)
def test_snapshot(chunks, expected, text):
    tracker = Tracker(Mode.SNAPSHOT)
    assert [tuple(tracker.add(c)) for c in chunks] == expected
    assert tracker.text == text


@pytest.mark.parametrize("mode", list(Mode))
def test_a_new_tracker_has_empty_text(mode):
    assert Tracker(mode).text == ""
    assert Tracker(mode).text_utf8 == b""


@pytest.mark.parametrize("mode", list(Mode))
@given(chunks=st.lists(st.text(max_size=12), max_size=8))
def test_the_utf8_text_and_its_size_are_the_text_encoded(mode, chunks):
    tracker = Tracker(mode)
    for chunk in chunks:
        tracker.add(chunk)
        utf8 = tracker.text_utf8
        assert type(utf8) is bytes and utf8 == tracker.text.encode()
        assert tracker.text_bytes == len(utf8)


# ------------------------------------------------------------------ text byte limit


def test_append_text_limit_counts_utf8_bytes_and_changes_nothing():
    tracker = Tracker(Mode.APPEND)
    tracker.add("aé", max_text_bytes=5)  # 3 bytes
    with pytest.raises(ResourceExhausted):
        tracker.add("éa", max_text_bytes=5)  # would be 6 bytes, though 4 code points
    assert tracker.text == "aé"
    assert tracker.add("é", max_text_bytes=5) == ("é", False)  # exactly 5: fine
    assert tracker.text == "aéé"


def test_auto_text_limit_leaves_last_seen_as_it_was():
    tracker = Tracker(Mode.AUTO)
    tracker.add("abc", max_text_bytes=6)
    with pytest.raises(ResourceExhausted):
        tracker.add("xyzw", max_text_bytes=6)  # a fragment: "abcxyzw" is 7 bytes
    assert tracker.text == "abc"
    # last_seen is still "abc", so "abcd" is a snapshot adding "d"; had the refused chunk
    # become last_seen, "abcd" would be a whole new fragment and pass the limit.
    assert tracker.add("abcd", max_text_bytes=6) == ("d", False)
    assert tracker.text == "abcd"


def test_snapshot_text_limit_applies_to_rewrites_too():
    tracker = Tracker(Mode.SNAPSHOT)
    tracker.add("abc", max_text_bytes=4)
    with pytest.raises(ResourceExhausted):
        tracker.add("abcde", max_text_bytes=4)
    with pytest.raises(ResourceExhausted):
        tracker.add("xyzéé", max_text_bytes=4)
    assert tracker.text == "abc"
    assert tracker.add("abcd", max_text_bytes=4) == ("d", False)
    assert tracker.add("zz", max_text_bytes=4) == ("zz", True)
    assert tracker.text == "zz"


def test_text_limit_refuses_a_first_chunk_too():
    for mode in Mode:
        tracker = Tracker(mode)
        with pytest.raises(ResourceExhausted):
            tracker.add("€€", max_text_bytes=5)
        assert tracker.text == ""
