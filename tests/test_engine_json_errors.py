"""JsonReader's errors: what the message says was wrong, and the offset it names.

Contract ("Processors"): text that cannot become JSON gets INVALID_ARGUMENT "whose message
says what was wrong 'at offset N' (N in Unicode code points of the complete text, from 0)".
Each case here is checked fed whole and fed one code point at a time: the message may not
depend on the chunking.
"""

from __future__ import annotations

import re

import pytest
from helpers import apply_ops, loads_exact

from server.engine import InvalidArgument
from server.engine._jsonreader import JsonReader
from server.engine._processors import JsonProcessor

BUDGET = re.compile(r"JSON paths of one chunk would pass (\d+) characters at offset (\d+)$")


def error_of(pieces: list[str], **limits) -> InvalidArgument:
    reader = JsonReader(**limits)
    with pytest.raises(InvalidArgument) as info:
        for piece in pieces:
            reader.feed(piece)
        reader.close()
    return info.value


def messages(text: str) -> set[str]:
    """The messages for `text` fed whole and fed a code point at a time."""
    return {error_of([text]).message, error_of(list(text)).message}


# The character that cannot be there is named as the text has it: a printable one in
# single quotes, a single quote in double quotes, any other by its code point.
NAMED = [
    ("x", "expected a value, found 'x' at offset 0"),
    ("'a'", 'expected a value, found "\'" at offset 0'),
    ("\x0b1", "expected a value, found U+000B at offset 0"),
    ("\x7f", "expected a value, found U+007F at offset 0"),
    ("[1 '", "expected ',' or ']', found \"'\" at offset 3"),
    ('{"a" x', "expected ':' after a key, found 'x' at offset 5"),
    ("{\x01", "expected a key in quotes, found U+0001 at offset 1"),
    ("1 é", "unexpected 'é' after the value at offset 2"),
    ("[tx]", "unexpected 'x' in 'true' at offset 2"),
    ("[trxe]", "unexpected 'x' in 'true' at offset 3"),
    ("[fals'", "unexpected \"'\" in 'false' at offset 5"),
    ("nu\tll", "unexpected U+0009 in 'null' at offset 2"),
    ("-x", "unexpected 'x' in a number at offset 1"),
]


@pytest.mark.parametrize("text,message", NAMED)
def test_the_unexpected_character_is_named_as_written(text, message):
    assert messages(text) == {"invalid JSON: " + message}


# A bad escape names its first bad character: the one after the backslash, or the first
# of a \u escape's four characters that is not a hex digit.
ESCAPES = [
    ('"\\x"', "invalid escape 'x' at offset 2"),
    ('"\\\'"', 'invalid escape "\'" at offset 2'),
    ('"\\\x01"', "invalid escape U+0001 at offset 2"),
    ('"ab\\n\\tc\\x"', "invalid escape 'x' at offset 9"),
    ('["\\n", "\\q"]', "invalid escape 'q' at offset 9"),
    ('"\\uZ000"', "expected a hex digit in a \\u escape, found 'Z' at offset 3"),
    ('"\\u0Z00"', "expected a hex digit in a \\u escape, found 'Z' at offset 4"),
    ('"\\u12g4"', "expected a hex digit in a \\u escape, found 'g' at offset 5"),
    ('"\\u123\'"', 'expected a hex digit in a \\u escape, found "\'" at offset 6'),
    ('"\\u\\n00"', "expected a hex digit in a \\u escape, found '\\' at offset 3"),
    ('"\\n\\u\\n00"', "expected a hex digit in a \\u escape, found '\\' at offset 5"),
    ('"\\ud800\\uZ"', "expected a hex digit in a \\u escape, found 'Z' at offset 9"),
    ('"\\ud800\\x"', "invalid escape 'x' at offset 8"),
    ('{"k\\x": 1}', "invalid escape 'x' at offset 4"),
]


@pytest.mark.parametrize("text,message", ESCAPES)
def test_a_bad_escape_names_its_first_bad_character(text, message):
    assert messages(text) == {"invalid JSON: " + message}


# A leading fence is ``` (maybe ```json); a backtick that does not begin one fails at the
# first character that is not a backtick.
FENCES = [
    ("`x", "unexpected 'x' at offset 1"),
    ("``x", "unexpected 'x' at offset 2"),
    ("  ``{}", "unexpected '{' at offset 4"),
    ("`\x00", "unexpected U+0000 at offset 1"),
    ("```json\n{}\n``x", "unexpected 'x' at offset 13"),
    ("```\n1\n```x", "unexpected 'x' after the closing fence at offset 9"),
]


@pytest.mark.parametrize("text,message", FENCES)
def test_a_broken_fence_fails_at_its_first_character_that_is_not_a_backtick(text, message):
    assert messages(text) == {"invalid JSON: " + message}


@pytest.mark.parametrize(
    "pieces,value",
    [
        (["```json[1]"], "[1]"),
        (["```json{}"], "{}"),
        (["```json", '"a"'], '"a"'),
        (["```[1]"], "[1]"),
        (["```", "[", "2]"], "[2]"),
        (["```\n", "{}"], "{}"),
    ],
)
def test_a_fenced_value_shows_as_soon_as_it_is_read(pieces, value):
    """Contract: a leading fence is accepted, and a value is shown as its text arrives, with
    no closing fence or newline needed first."""
    reader = JsonReader()
    ops = []
    for piece in pieces:
        ops += reader.feed(piece)
    assert apply_ops(ops) == loads_exact(value)
    assert reader.close() == []


@pytest.mark.parametrize(
    "pieces", [["tr", "ue"], ["t", "r", "u", "e"], ["  nu", "ll"], ["f", "alse  "]]
)
def test_a_split_top_level_literal_is_the_whole_value_json(pieces):
    """Contract: the final PartialJson carries the complete value as value_json."""
    processor = JsonProcessor("id")
    text = "".join(pieces)
    for piece in pieces[:-1]:
        processor.process(piece, final=False, complete_text=lambda: text)
    out = processor.process(pieces[-1], final=True, complete_text=lambda: text)
    assert out.value_json == text.strip()


def budget_error(pieces: list[str]) -> tuple[int, int]:
    """(budget, offset) of the budget error when every feed may emit no path at all."""
    error = error_of(pieces, path_budget_per_char=0, path_budget_base=0)
    match = BUDGET.match(error.message)
    assert match, error.message
    return int(match[1]), int(match[2])


@pytest.mark.parametrize(
    "pieces,offset",
    [
        # A literal or number split across feeds is emitted when the feed that completes
        # it is read: at the literal's last character, at the character after the number.
        (["[tr", "ue]"], 4),
        (["[t", "rue]"], 4),
        (["[nul", "l]"], 4),
        (["[1", "2]"], 3),
        (["[1", "2", "]"], 3),
        # Read whole in one feed, at its first character.
        (["[", "true]"], 1),
        (["[", "12]"], 1),
    ],
)
def test_a_budget_error_names_the_character_of_the_failing_feed_that_emits_the_op(pieces, offset):
    """Contract limits: the paths of one chunk's ops are bounded, and the op that would pass
    the budget fails "at offset N": N is a character of the chunk that failed."""
    assert budget_error(pieces) == (0, offset)
    fed_before = len("".join(pieces[:-1]))
    assert fed_before <= offset < fed_before + len(pieces[-1])


@pytest.mark.parametrize(
    "text", ['{"a": [1, x', '[[[{"k": "v"}, trx', '{"a": "\\q', "```json\n[1] x", "[1e5.", "{}}"]
)
def test_held_bytes_after_an_error_is_still_a_recount(text):
    """An error is kept (every call raises it again), and counted, with what the reader
    held when it was found."""
    for pieces in ([text], list(text)):
        reader = JsonReader()
        with pytest.raises(InvalidArgument):
            for piece in pieces:
                reader.feed(piece)
        assert reader.held_bytes == reader.recount_held_bytes()


def first_failing_feed(text: str) -> int:
    """The index of the code point whose feed first fails, fed one at a time."""
    reader = JsonReader()
    for k, char in enumerate(text):
        try:
            reader.feed(char)
        except InvalidArgument:
            return k
    raise AssertionError(f"no feed of {text!r} failed")


OFFSETS = [(text, int(message.rsplit(" ", 1)[1])) for text, message in NAMED + ESCAPES + FENCES]


@pytest.mark.parametrize("text,offset", [*OFFSETS, ('"\\uZ', 3), ('"ab\\u0Z', 6)])
def test_the_error_comes_with_the_first_character_that_cannot_be_there(text, offset):
    """Module docstring: an offset names the first character that cannot be there; fed one
    code point at a time, the feed of that character is the first to fail."""
    assert first_failing_feed(text) == offset


@pytest.mark.parametrize("escape,char", [("\\u0041", "A"), ("\\u00e9", "é"), ("\\n", "\n")])
@pytest.mark.parametrize("before", ['"', '"ab', '{"k": "x'])
def test_a_complete_escape_at_the_end_of_a_piece_is_shown_at_once(escape, char, before):
    """Contract: nothing shown is taken back, and text is emitted as soon as it is certain:
    a finished escape (not a high surrogate, which waits for its low half) does not wait
    for the next piece."""
    reader = JsonReader()
    reader.feed(before)
    ops = reader.feed(escape)
    assert [op.text for op in ops if hasattr(op, "text")] == [char]
