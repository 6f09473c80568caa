"""JsonReader: partial JSON in, Set / Append ops out, held to the contract's JSON rules."""

from __future__ import annotations

import json
import re
import time

import pytest
from helpers import (
    ABSENT,
    Rebuilder,
    apply_ops,
    check_chunkings,
    chunkings_of,
    cut,
    documents,
    extends,
    loads_exact,
    normalized,
    shown,
    snapshot,
)
from hypothesis import given
from hypothesis import strategies as st

from server.engine import Append, End, InvalidArgument, Set
from server.engine._jsonreader import JsonReader

OFFSET = re.compile(r"at offset (\d+)\b")


def read(chunks: list[str], **limits) -> list:
    reader = JsonReader(**limits)
    ops = []
    for chunk in chunks:
        ops += reader.feed(chunk)
    return ops + reader.close()


def value_of(chunks: list[str]):
    return apply_ops(read(chunks))


def values_after(*chunks: str) -> list:
    """The rebuilt value after each chunk is fed (no close)."""
    reader, rebuilder, seen = JsonReader(), Rebuilder(), []
    for chunk in chunks:
        rebuilder.apply(reader.feed(chunk))
        seen.append(snapshot(rebuilder.value))
    return seen


def offset_of(error: InvalidArgument) -> int:
    match = OFFSET.search(error.message)
    assert match, f"no 'at offset N' in {error.message!r}"
    return int(match.group(1))


# ----------------------------------------------------------------- properties


@given(doc=documents(), data=st.data())
def test_ops_rebuild_the_value_and_only_ever_extend_it(doc, data):
    chunks = data.draw(chunkings_of(doc.text))
    reader, rebuilder = JsonReader(), Rebuilder()
    shown = ABSENT
    for chunk in chunks:
        rebuilder.apply(reader.feed(chunk))
        now = snapshot(rebuilder.value)
        assert extends(shown, now), f"{shown!r} -> {now!r} after {chunk!r}"
        shown = now
    rebuilder.apply(reader.close())
    assert extends(shown, rebuilder.value)
    assert rebuilder.value == doc.value


@given(doc=documents(), data=st.data())
def test_ops_do_not_depend_on_the_chunking(doc, data):
    chunks = data.draw(chunkings_of(doc.text))
    assert normalized(read(chunks)) == normalized(read([doc.text]))


def test_docstring_example():
    text = '{"a": ["x\\u00e9", 1]}'
    expected = [
        Set("", "{}"),
        Set("/a", "[]"),
        Set("/a/0", '""'),
        Append("/a/0", "xé"),
        Set("/a/1", "1"),
    ]
    check_chunkings(lambda chunks: shown(normalized(read(chunks))), text, expected)


def test_pointer_escapes_in_keys():
    text = '{"a/b": {"m~n": [true], "": null}}'
    check_chunkings(value_of, text, {"a/b": {"m~n": [True], "": None}})
    paths = [op.path for op in read([text])]
    assert "/a~1b/m~0n/0" in paths
    assert "/a~1b/" in paths


def test_numbers_are_carried_as_written():
    literals = ["-0", "1e-7", "1E+30", "0.5", "-0.0", "12345678901234567890123456789012345678901"]
    text = "[" + ", ".join(literals) + "]"
    ops = shown(read([text]))
    assert [op.json for op in ops if op.path != ""] == literals
    check_chunkings(value_of, text, loads_exact(text))


# ----------------------------------------------------------------- tricky prefixes


def test_trailing_backslash():
    assert values_after('["ab\\', 'n"]') == [["ab"], ["ab\n"]]
    assert values_after('"ab\\', "\\", '"') == ["ab", "ab\\", "ab\\"]


def test_partial_unicode_escape():
    assert values_after('["x\\u00', "e9", '"]') == [["x"], ["xé"], ["xé"]]
    assert values_after('"\\u', "2", "0", "a", "c", '"') == ["", "", "", "", "€", "€"]


def test_surrogate_pair_split_at_every_point():
    text = '["\\ud83d\\ude00"]'
    for i in range(len(text) + 1):
        first, rest = values_after(text[:i], text[i:])
        if i == 0:
            assert first is ABSENT
        elif i == 1:
            assert first == []
        elif i < text.index('"]'):
            assert first == [""], f"split at {i}: {first!r}"
        else:
            assert first == ["😀"]
        assert rest == ["😀"]


def test_top_level_surrogate_pair_in_every_chunking():
    check_chunkings(value_of, '"a\\uD83D\\uDE00b"', "a😀b")


@pytest.mark.parametrize(
    "text",
    [
        '"\\ud800"',
        '"\\ud800x"',
        '"\\udc00"',
        '"\\udc00\\ud800"',
        '"\\ud800\\u0041"',
        '"\\ud800\\ud83d\\ude00"',
        '["\\ud800", "\\udfff"]',
    ],
)
def test_lone_surrogate_escape_decodes_to_replacement_character(text):
    # json.loads keeps lone surrogates; a proto string cannot, so each becomes U+FFFD.
    expected = json.loads(text)
    if isinstance(expected, str):
        expected = _replace_lone_surrogates(expected)
    else:
        expected = [_replace_lone_surrogates(s) for s in expected]
    assert "\ufffd" in str(expected)
    check_chunkings(value_of, text, expected)


def _replace_lone_surrogates(s: str) -> str:
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def test_partial_key_appears_only_with_its_value():
    assert values_after('{"ab', 'c"', ":", " ", '"', 'v"}') == [
        {},
        {},
        {},
        {},
        {"abc": ""},
        {"abc": "v"},
    ]
    assert values_after('{"k": [', "]}") == [{"k": []}, {"k": []}]
    assert values_after('{"k": 1', "2", "}") == [{}, {}, {"k": loads_exact("12")}]
    assert values_after('{"a": 1, "b', '": nul', "l}") == [
        {"a": loads_exact("1")},
        {"a": loads_exact("1")},
        {"a": loads_exact("1"), "b": None},
    ]


def test_prefix_ending_in_a_comma():
    one, two = loads_exact("1"), loads_exact("2")
    assert values_after("[1,", " 2]") == [[one], [one, two]]
    assert values_after('{"a": 1,', ' "b": 2}') == [{"a": one}, {"a": one, "b": two}]
    assert values_after('{"a": "x",', ' "b": "y"}') == [{"a": "x"}, {"a": "x", "b": "y"}]


def test_partial_literal():
    assert values_after("[tru", "e]") == [[], [True]]
    assert values_after('{"a": fals', "e}") == [{}, {"a": False}]
    reader = JsonReader()
    assert reader.feed("nul") == []
    assert apply_ops(reader.feed("l") + reader.close()) is None


def test_raw_control_characters_in_strings():
    text = '{"a": "line1\nline2\r\n\tend\x00\x1f"}'
    check_chunkings(value_of, text, {"a": "line1\nline2\r\n\tend\x00\x1f"})


@pytest.mark.parametrize("literal", ["0", "-0", "123", "1e-7", "1E+30", "0.5", "9" * 45])
def test_top_level_number_completes_only_at_close(literal):
    reader = JsonReader()
    for ch in literal:
        assert reader.feed(ch) == []
    assert shown(reader.close()) == [Set("", literal)]
    check_chunkings(value_of, literal, loads_exact(literal))


def test_minus_alone_is_an_unfinished_number():
    reader = JsonReader()
    assert reader.feed("-") == []
    with pytest.raises(InvalidArgument) as info:
        reader.close()
    assert "unexpected end of JSON" in info.value.message
    assert offset_of(info.value) == 1


def test_leading_whitespace():
    check_chunkings(value_of, ' \n\t\r [1, {"a": "b"}]', [loads_exact("1"), {"a": "b"}])
    check_chunkings(value_of, "\n\n  42", loads_exact("42"))


def test_partial_fence():
    reader, rebuilder = JsonReader(), Rebuilder()
    assert reader.feed("``") == []
    assert reader.feed("`json\n") == []
    rebuilder.apply(reader.feed('{"a": 1}\n``'))
    rebuilder.apply(reader.feed("`"))
    rebuilder.apply(reader.close())
    assert rebuilder.value == {"a": loads_exact("1")}


@pytest.mark.parametrize(
    "text",
    ['```json\n{"a": [1, "x"]}\n```', '```json\n"s"\n```\n', "```json\n12\n```", "```json\n[]```"],
)
def test_fenced_value_in_every_chunking(text):
    body = text.removeprefix("```json\n").rstrip("\n").removesuffix("```")
    check_chunkings(value_of, text, loads_exact(body))


def test_repeated_key_comes_as_a_new_set_at_the_same_path():
    text = '{"a": 1, "b": true, "a": 2}'
    ops = shown(read([text]))
    assert [op for op in ops if op.path == "/a"] == [Set("/a", "1"), Set("/a", "2")]
    check_chunkings(value_of, text, loads_exact(text))

    text = '{"a": "x", "a": [1]}'
    assert shown(normalized(read([text]))) == [
        Set("", "{}"),
        Set("/a", '""'),
        Append("/a", "x"),
        Set("/a", "[]"),
        Set("/a/0", "1"),
    ]
    check_chunkings(value_of, text, {"a": [loads_exact("1")]})


def test_close_after_a_complete_value_adds_nothing():
    reader = JsonReader()
    reader.feed('{"a": [1]}  ')
    assert shown(reader.close()) == []


# ----------------------------------------------------------------- strictness

# Each offset is that of the first code point after which the text can no longer become
# JSON: fed one code point at a time, the feed of that one is the first to fail.
REJECTED = [
    ("NaN", 0),
    ("[NaN]", 1),
    ("Infinity", 0),
    ("-Infinity", 1),
    ('{"a": NaN}', 6),
    ("[1 // c\n]", 3),
    ("/* c */ 1", 0),
    ('{"a": 1 /* c */}', 8),
    ("[1,]", 3),
    ("[1, 2, ]", 7),
    ('{"a": 1,}', 8),
    ("['a']", 1),
    ("{'a': 1}", 1),
    ("'a'", 0),
    ("01", 1),
    ("[01]", 2),
    ("-01", 2),
    ("00", 1),
    ("[1.]", 3),
    ("1.e5", 2),
    (".5", 0),
    ("[.5]", 1),
    ("+1", 0),
    ("[+1]", 1),
    ("{}x", 2),
    ("[1] [2]", 4),
    ('"a" "b"', 4),
    ("1 2", 2),
    ("12a", 2),
    ("true false", 5),
    ("nullx", 4),
    ("{} }", 3),
    ("[1 2]", 3),
    ('{"a" 1}', 5),
    ('{"a": 1 "b": 2}', 8),
    ("{1: 2}", 1),
    ("[}", 1),
    ("]", 0),
    ('"\\x"', 2),
    ('"\\u12g4"', 5),
    ("tx", 1),
    ("[\x00]", 1),
    ("\x0b1", 0),
    ('["😀", x]', 6),
    ('{"é": tru }', 9),
    ("```json\n{}\n```x", 14),
]


@pytest.mark.parametrize("text,offset", REJECTED)
def test_invalid_json_is_rejected_at_its_offset(text, offset):
    reader = JsonReader()
    for ch in text[:offset]:
        reader.feed(ch)  # a valid prefix: no error yet
    with pytest.raises(InvalidArgument) as info:
        reader.feed(text[offset])
    assert offset_of(info.value) == offset
    # After an error, every call fails again with the same error.
    for call in (lambda: reader.feed(text[offset + 1 :]), lambda: reader.feed(""), reader.close):
        with pytest.raises(InvalidArgument) as again:
            call()
        assert offset_of(again.value) == offset

    with pytest.raises(InvalidArgument) as whole:
        read([text])
    assert offset_of(whole.value) == offset


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "-",
        "tru",
        "[1,",
        '{"a"',
        '{"a":',
        '"abc',
        "1.",
        "1e",
        "1e+",
        '"\\u00',
        "```json\n{",
    ],
)
def test_unfinished_json_fails_at_close_with_its_end_offset(text):
    reader = JsonReader()
    for ch in text:
        reader.feed(ch)
    with pytest.raises(InvalidArgument) as info:
        reader.close()
    assert "unexpected end of JSON" in info.value.message
    assert offset_of(info.value) == len(text)


# ----------------------------------------------------------------- depth


def test_depth_512_is_fine_and_the_513th_bracket_fails_at_its_own_offset():
    text = "[" * 512 + "]" * 512
    assert apply_ops(read([text])) == loads_exact(text)
    assert apply_ops(read(cut(text, range(0, len(text), 7)))) == loads_exact(text)

    with pytest.raises(InvalidArgument) as info:
        read(["[" * 513])
    assert offset_of(info.value) == 512

    reader = JsonReader()
    reader.feed("[ " * 512)
    with pytest.raises(InvalidArgument) as info:
        reader.feed("[")
    assert offset_of(info.value) == 1024

    with pytest.raises(InvalidArgument) as info:
        read(['{"a":' * 513])
    assert offset_of(info.value) == 5 * 512


def test_depth_limit_is_configurable():
    assert apply_ops(read(["[[[]]]"], max_depth=3)) == [[[]]]
    with pytest.raises(InvalidArgument) as info:
        read(["[[[[]]]]"], max_depth=3)
    assert offset_of(info.value) == 3


def test_hundred_thousand_open_brackets_is_an_error_not_a_recursion_error():
    text = "[" * 100_000
    with pytest.raises(InvalidArgument) as info:
        read([text])
    assert offset_of(info.value) == 512
    with pytest.raises(InvalidArgument):
        read(cut(text, range(0, len(text), 1000)))


def test_nesting_deeper_than_the_interpreter_stack_needs_no_recursion():
    depth = 3000  # well past Python's default recursion limit of 1000
    text = '{"a":' * depth + "[" + "]" + "}" * depth
    ops = shown(
        read(cut(text, range(0, len(text), 64)), max_depth=depth + 1, max_path_chars=2 * depth)
    )
    assert len(ops) == depth + 1
    assert ops[-1] == Set("/a" * depth, "[]")


# ----------------------------------------------------------------- cost


def _document_of_a_megabyte() -> str:
    items = [{"id": i, "name": f"item {i}", "tags": ["a", "b\\n"]} for i in range(6000)]
    return json.dumps({"text": 'line "q" é\\n ' * 40_000, "items": items})


# Each holds one token a reader might collect piece by piece: a copy of everything so far
# at every piece would make these quadratic. The key needs paths far past the defaults.
ONE_MEGABYTE = {
    "document": _document_of_a_megabyte,
    "string": lambda: json.dumps("x\\é" * 120_000),
    "number": lambda: "[" + "7" * 1_000_000 + "]",
    "key": lambda: json.dumps({"k" * 1_000_000: 1}),
    "whitespace": lambda: " " * 1_000_000 + "[]",
    "array": lambda: "[" + "1234567," * 125_000 + "1]",
}


@pytest.mark.parametrize("kind", sorted(ONE_MEGABYTE))
def test_one_megabyte_in_16_character_pieces_takes_seconds_not_minutes(kind):
    text = ONE_MEGABYTE[kind]()
    assert len(text) >= 1_000_000
    reader, ops = JsonReader(max_path_chars=len(text), path_budget_base=len(text)), []
    started = time.perf_counter()
    for i in range(0, len(text), 16):
        ops += reader.feed(text[i : i + 16])
    ops += reader.close()
    elapsed = time.perf_counter() - started
    assert elapsed < 30, f"{elapsed:.1f} s for {len(text)} code points"
    assert apply_ops(ops) == loads_exact(text)


# ----------------------------------------------------------------- path bounds

PATH_ERROR = "invalid JSON: path longer than 4096 characters at offset"


def first_error(chunks: list[str], **limits) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        read(chunks, **limits)
    return info.value


def some_cuts(text: str) -> list[list[str]]:
    """The whole text, 1-character pieces, 7-character pieces and a few two-way splits."""
    splits = [[text[:i], text[i:]] for i in (1, 2, len(text) // 2, len(text) - 2)]
    return [[text], list(text), cut(text, range(7, len(text), 7)), *splits]


@pytest.mark.parametrize(
    "parent,key_chars",
    [('{"', 4095), ('{"a": {"', 4093), ('[{"', 4093), ('{"~": {"', 4092)],
)
def test_a_key_that_makes_a_path_of_4096_is_fine_and_one_more_fails_at_its_quote(parent, key_chars):
    # '{"~": {"': the parent is "/~0", escaped: three characters.
    closer = "}" * parent.count("{") + "]" * parent.count("[")
    fits = parent + "k" * key_chars + '": 1' + closer
    for chunks in some_cuts(fits):
        ops = read(chunks)
        assert max(len(op.path) for op in ops) == 4096
    too_long = parent + "k" * (key_chars + 1) + '": 1' + closer
    for chunks in some_cuts(too_long):
        error = first_error(chunks)
        assert error.message == f"{PATH_ERROR} {len(parent) - 1}"


def test_escapes_count_as_they_are_written_in_the_path():
    fits = '{"' + "~" * 2047 + '/": 1}'  # "/" + 2047 * "~0" + "~1": 4097 characters
    assert first_error([fits]).message == f"{PATH_ERROR} 1"
    assert max(len(op.path) for op in read(['{"' + "~" * 2047 + '": 1}'])) == 4095


def test_a_long_key_fails_before_it_is_read_whole():
    reader = JsonReader()
    reader.feed('{"')
    with pytest.raises(InvalidArgument) as info:
        for _ in range(5000):
            reader.feed("k")
    assert info.value.message == f"{PATH_ERROR} 1"
    # At most a path's worth of one-character parts: a list slot and a str each.
    assert reader.held_bytes < 4096 * 128


def test_an_element_whose_path_is_too_long_fails_at_its_first_character():
    key = "k" * 4093  # "/" + key + "/0" is 4096 characters
    assert max(len(op.path) for op in read(['{"' + key + '": [1, [], {}]}'])) == 4096
    text = '{"' + key + '": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9,  10]}'
    for chunks in some_cuts(text):
        assert first_error(chunks).message == f"{PATH_ERROR} {text.index('10')}"
    assert read(['{"' + key + 'k": []}'])  # an empty array needs no element path
    text = '{"' + key + 'k": [ \n1]}'
    for chunks in some_cuts(text):
        assert first_error(chunks).message == f"{PATH_ERROR} {text.index('1]')}"


def test_the_path_limit_is_configurable():
    assert first_error(['{"abc": 1}'], max_path_chars=3).message.endswith("at offset 1")
    assert first_error(["[[[[1]]]]"], max_path_chars=7).message.endswith("at offset 4")
    assert apply_ops(read(["[[[1]]]"], max_path_chars=6)) == [[[loads_exact("1")]]]


# ----------------------------------------------------------------- path budget

BUDGET = re.compile(r"^JSON paths of one chunk would pass (\d+) characters at offset (\d+)$")


def path_chars(ops: list) -> int:
    return sum(len(op.path) for op in ops)


def test_512_nested_brackets_and_their_closers_fit_one_feeds_budget():
    text = "[" * 512 + "]" * 512
    ops = read([text])
    assert path_chars(ops) == 2 * 261_632
    assert path_chars(ops) <= 8 * len(text) + 512 * 1024


def test_many_values_under_deep_nesting_pass_the_budget_at_the_op_that_would():
    text = "[" * 512 + "0," * 200_000
    budget = 8 * len(text) + 512 * 1024
    # Where the budget runs out, counted without the reader: each "0" is Set at its path.
    total, k = sum(range(0, 1024, 2)), 0
    while True:
        total += 1022 + 1 + len(str(k))
        if total > budget:
            break
        k += 1
    for ends in (True, False):
        error = first_error([text], ends=ends)
        match = BUDGET.match(error.message)
        assert match, error.message
        assert (int(match[1]), int(match[2])) == (budget, 512 + 2 * k)

    # Fed 500 characters at a time, every feed stays within its own budget.
    reader = JsonReader()
    for chunk in cut(text, range(500, len(text), 500)):
        assert path_chars(reader.feed(chunk)) <= 8 * len(chunk) + 512 * 1024


def test_close_has_a_budget_of_its_own():
    reader = JsonReader(path_budget_base=0)
    reader.feed("12")
    assert reader.close() == [Set("", "12")]  # the root's path is empty


@given(
    doc=documents(),
    data=st.data(),
    per_char=st.sampled_from([0, 1, 8]),
    base=st.sampled_from([0, 30, 300, 5000]),
    max_path=st.sampled_from([64, 4096]),
)
def test_a_feed_fails_on_the_budget_exactly_when_its_ops_would_pass_it(
    doc, data, per_char, base, max_path
):
    # Feeds short enough that they cannot pass their budget are not metered at all; both
    # kinds are drawn here (max_path 64 and base 5000 leave feeds of up to 77 unmetered).
    chunks = data.draw(chunkings_of(doc.text))
    limits = {"path_budget_per_char": per_char, "path_budget_base": base}
    limited = JsonReader(max_path_chars=max_path, **limits)
    free = JsonReader(max_path_chars=max_path, path_budget_base=1 << 40)
    for chunk in chunks:
        try:
            expected = free.feed(chunk)
        except InvalidArgument:
            return  # a path too long, for both
        budget = per_char * len(chunk) + base
        if path_chars(expected) <= budget:
            assert limited.feed(chunk) == expected
            continue
        with pytest.raises(InvalidArgument) as info:
            limited.feed(chunk)
        match = BUDGET.match(info.value.message)
        assert match and int(match[1]) == budget
        assert 0 <= int(match[2]) < len("".join(chunks))
        return


# ----------------------------------------------------------------- held bytes


@given(
    doc=documents(),
    data=st.data(),
    ends=st.booleans(),
    starts=st.booleans(),
)
def test_held_bytes_is_kept_equal_to_a_recount(doc, data, ends, starts):
    # Documents close what they open, chunkings cut keys, numbers and escapes anywhere.
    reader = JsonReader(ends=ends, string_starts=starts)
    assert reader.held_bytes == reader.recount_held_bytes()
    for chunk in data.draw(chunkings_of(doc.text)):
        reader.feed(chunk)
        assert reader.held_bytes == reader.recount_held_bytes()
    reader.close()
    assert reader.held_bytes == reader.recount_held_bytes()


@pytest.mark.parametrize("piece", [1, 3, 64])
def test_held_bytes_follows_keys_and_numbers_read_in_pieces(piece):
    text = '{"' + "ké😀" * 300 + '": [' + "7" * 5000 + ', {"a": [[[' + "]]]}]}"
    reader, peak = JsonReader(), 0
    for chunk in cut(text, range(piece, len(text), piece)):
        reader.feed(chunk)
        assert reader.held_bytes == reader.recount_held_bytes()
        peak = max(peak, reader.held_bytes)
    assert peak > 5000  # the number's digits were counted while it was read
    assert reader.held_bytes == reader.recount_held_bytes()


def test_raw_lone_surrogates_read_as_replacement_characters() -> None:
    """Text that never passed through UTF-8 can hold a lone surrogate, escaped or not: it
    is read as U+FFFD, so every path and value encodes."""
    ops = JsonReader().feed('{"k\ud800": "v\udc00", "e\\ud800": 1}')
    assert ops[1:4] == [Set("/k\ufffd", '""'), Append("/k\ufffd", "v\ufffd"), End("/k\ufffd")]
    assert Set("/e\ufffd", "1") in ops


@pytest.mark.parametrize(
    ("pieces", "span"),
    [
        (['  "ab"  '], (2, 6)),
        (['  "a', 'b"', "  "], (2, 6)),
        (['  {"a": [1]}  '], (2, 12)),
        (["[1", "]"], (0, 3)),
        (["  12  "], (2, 4)),
        (["  true  "], (2, 6)),
    ],
)
def test_a_top_level_value_spans_from_its_first_character_to_its_last(pieces, span) -> None:
    reader = JsonReader()
    for piece in pieces:
        reader.feed(piece)
    assert reader.value_span == span


def test_a_lone_surrogate_escape_split_from_its_string_reads_as_a_replacement() -> None:
    assert JsonReader().feed('["a\ud800')[-1] == Append("/0", "a\ufffd")  # raw, unfinished
    reader = JsonReader()
    assert reader.feed('["a\\ud800')[-1] == Append("/0", "a")
    assert reader.feed('b"]')[0] == Append("/0", "\ufffdb")


def test_a_string_read_across_feeds_spends_the_budget_of_the_feed_that_emits_its_ops() -> None:
    """Each op costs its path; the one that would pass the feed's budget fails at its
    character: here an Append at the string's first character, an End at its quote."""
    reader = JsonReader(path_budget_per_char=1, path_budget_base=0)
    reader.feed('["')  # 2 characters: room for the Set at /0
    with pytest.raises(InvalidArgument) as appended:
        reader.feed("a")  # 1 character: no room for its Append at /0
    assert appended.value.message == "JSON paths of one chunk would pass 1 characters at offset 2"
    reader = JsonReader(path_budget_per_char=1, path_budget_base=0)
    reader.feed("[")
    with pytest.raises(InvalidArgument) as appended:
        reader.feed('"a')  # room for the Set at /0, none for the Append after it
    assert appended.value.message == "JSON paths of one chunk would pass 2 characters at offset 2"
    reader = JsonReader(path_budget_per_char=0, path_budget_base=3)
    reader.feed('["')
    with pytest.raises(InvalidArgument) as ended:
        reader.feed('ab"]')  # the Append fits, the End at the quote does not
    assert ended.value.message == "JSON paths of one chunk would pass 3 characters at offset 4"


def test_a_path_may_reach_4096_characters_and_no_more() -> None:
    """The key `/k...k` of 4,095 characters makes a path of 4,096, read; one character more is
    refused at the key's quote, as soon as it is seen, before the key is closed."""
    assert JsonReader().feed('{"' + "k" * 4095 + '": 1}')[1] == Set("/" + "k" * 4095, "1")
    for pieces in (
        ['{"' + "k" * 4096],
        ['{"' + "k" * 4000, "k" * 96],
        ['{"' + "k" * 4096 + '": 1}'],
    ):
        reader = JsonReader()
        with pytest.raises(InvalidArgument) as refused:
            for piece in pieces:
                reader.feed(piece)
        assert refused.value.message == (
            "invalid JSON: path longer than 4096 characters at offset 1"
        )
    nested = '{"a": {"' + "k" * 4093 + '": 1}}'  # /a/k...k: 4,096 characters
    assert Set("/a/" + "k" * 4093, "1") in JsonReader().feed(nested)
    with pytest.raises(InvalidArgument, match="at offset 7"):
        JsonReader().feed('{"a": {"' + "k" * 4094 + '": 1}}')


@pytest.mark.parametrize("split", [False, True])
def test_a_key_escaped_past_the_path_limit_is_refused(split: bool) -> None:
    """A path is counted as written, escaped: 2,047 slashes and a `k` make a path of 4,096
    characters (`/~1~1...k`), 2,048 slashes one of 4,097. The key in one piece or across
    feeds."""

    def feed(key: str) -> list:
        text = '{"' + key + '": 1}'
        reader = JsonReader()
        if not split:
            return reader.feed(text)
        return reader.feed(text[:100]) + reader.feed(text[100:])

    assert Set("/" + "~1" * 2047 + "k", "1") in feed("/" * 2047 + "k")
    with pytest.raises(InvalidArgument, match="path longer than 4096 characters at offset 1"):
        feed("/" * 2048)


@pytest.mark.parametrize(("budget", "offset"), [(0, 2), (2, 3), (4, 5)])
def test_a_string_read_whole_spends_the_budget_at_each_ops_character(budget, offset) -> None:
    """Its Set fails at the opening quote, its Append at its first character, its End at
    the closing quote (each costs its path, /0: 2 characters)."""
    reader = JsonReader(path_budget_per_char=0, path_budget_base=budget)
    reader.feed("[")
    with pytest.raises(InvalidArgument) as refused:
        reader.feed(' "ab"]')
    assert refused.value.message == (
        f"JSON paths of one chunk would pass {budget} characters at offset {offset}"
    )


def test_an_empty_string_is_set_and_ended_with_nothing_appended() -> None:
    assert JsonReader().feed('[""]') == [Set("", "[]"), Set("/0", '""'), End("/0"), End("")]


@pytest.mark.parametrize("char", "+.eE")
def test_a_value_cannot_start_with_a_sign_point_or_exponent(char: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        JsonReader().feed(f"[{char}1]")
    assert refused.value.message == f"invalid JSON: expected a value, found '{char}' at offset 1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1]', "expected ',' or '}', found ']' at offset 7"),
        ("[1}", "expected ',' or ']', found '}' at offset 2"),
        ("```json\n[1] x", "unexpected 'x' after the value at offset 12"),
        ("```json\n[1]\n```x", "unexpected 'x' after the closing fence at offset 15"),
        ("[1] `", "unexpected '`' after the value at offset 4"),
    ],
)
def test_a_wrong_closer_or_text_after_a_fenced_value_is_named(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        JsonReader().feed(text)
    assert refused.value.message == f"invalid JSON: {message}"


def test_a_value_has_no_span_until_it_ends() -> None:
    reader = JsonReader()
    assert reader.value_span is None
    reader.feed("  [1")
    assert reader.value_span is None
    reader.feed("]")
    assert reader.value_span == (2, 5)
