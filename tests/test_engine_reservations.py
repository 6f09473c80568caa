"""What a chunk reserves for its processor (`growth_bound`), at the rates docs/limits.md
gives ("Memory is bounded by the limits"): for the JSON processors 16.2 KiB for each `{` or
`[` (8.1 MiB at most in all) and 5.125 bytes a character; `metric` and `dashboard` add 640 B
for each `{`, 128 B for each `"` and 12.5 bytes a character. A chunk of at most 256
characters counts every character as a bracket and a quote.

tests/test_engine_bounds.py checks the bound is never passed; this file checks it is the
documented one, which decides when a chunk gets RESOURCE_EXHAUSTED. Rates are measured as
differences between texts of one length (the docs round to a tenth).
"""

from __future__ import annotations

import pytest

from server.engine._processors import BUILTIN_PROCESSORS

KIB, MIB = 1024, 1024 * 1024
JSON_LIKE = ["json", "plan", "search_data_catalog"]
FILES = ["metric", "dashboard"]


def bound(name: str, text: str, depth: int = 512) -> int:
    return BUILTIN_PROCESSORS[name]("r", max_json_depth=depth).growth_bound(text)


def per_char(name: str) -> float:
    return (bound(name, "a" * 3000) - bound(name, "a" * 1000)) / 2000


def per(name: str, char: str, count: int = 100, length: int = 1000) -> float:
    """What each `char` adds to the bound of a text of `length` characters."""
    text = char * count + "a" * (length - count)
    return (bound(name, text) - bound(name, "a" * length)) / count


@pytest.mark.parametrize("name", ["json", "plan", "search_data_catalog", *FILES])
def test_each_character_reserves_the_documented_bytes(name):
    message = 4.5 if name in ("plan", "search_data_catalog") else 0
    expected = 5.125 + message + (12.5 if name in FILES else 0)
    assert per_char(name) == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("name", JSON_LIKE + FILES)
def test_each_bracket_reserves_a_frame_and_each_file_its_640_bytes(name):
    extra = 640 if name in FILES else 0
    assert per(name, "{") == pytest.approx(16.2 * KIB + extra, abs=0.05 * KIB)
    assert per(name, "[") == pytest.approx(16.2 * KIB, abs=0.05 * KIB)


@pytest.mark.parametrize("name", JSON_LIKE + FILES)
def test_each_quote_reserves_128_bytes_for_metric_and_dashboard_only(name):
    assert per(name, '"') == (128 if name in FILES else 0)


@pytest.mark.parametrize("name", JSON_LIKE + FILES)
def test_brackets_reserve_at_most_8_1_mib_in_all(name):
    n = 300_000
    frames = bound(name, "[" * n) - bound(name, "a" * n)
    assert frames == pytest.approx(8.1 * MIB, abs=0.05 * MIB)


@pytest.mark.parametrize("name", JSON_LIKE + FILES)
@pytest.mark.parametrize("length", [0, 1, 2, 100, 255, 256])
@pytest.mark.parametrize("depth", [512, 64])
def test_a_chunk_of_at_most_256_characters_counts_each_as_a_bracket_and_a_quote(
    name, length, depth
):
    """At any --max-json-depth (the default's bounds are computed once, others' when a
    reader is made)."""
    bounds = {bound(name, c * length, depth) for c in 'a{["'}
    assert len(bounds) == 1


@pytest.mark.parametrize("name", JSON_LIKE + FILES)
def test_a_chunk_of_257_characters_has_its_brackets_counted(name):
    assert per(name, "{", length=257) == per(name, "{")
    assert per(name, "[", length=257) == per(name, "[")
    # So one without brackets reserves less than a chunk of 256 characters.
    assert bound(name, "a" * 257) < bound(name, "a" * 256)


@pytest.mark.parametrize("name", FILES)
def test_files_reserve_for_one_file_more_than_the_chunk_opens(name):
    """Beyond the JSON reader's own bound, `metric` and `dashboard` reserve 640 B for each
    `{` and for one file more (the one the chunk may go on with), 128 B for each `"`, 12.5
    bytes a character and a fixed 160 B (to a byte, as 12.5 is rounded): the same fixed part
    for any chunk, short or long."""
    texts = ["", "a", "a" * 100, "{" * 256, "a" * 1000, "{" * 10 + '"' * 5 + "a" * 985, "a" * 4000]
    fixed = set()
    for text in texts:
        extra = bound(name, text) - bound("json", text)
        n = len(text)
        braces, quotes = (n, n) if n <= 256 else (text.count("{"), text.count('"'))
        fixed.add(extra - 640 * (braces + 1) - 128 * quotes - 12.5 * n)
    assert all(159 <= part <= 161 for part in fixed), fixed


@pytest.mark.parametrize("n", [257, 1000, 5000])
def test_a_chunk_without_brackets_reserves_one_frame_5_125_bytes_a_character_and_17376(n):
    """docs/limits.md: 16,592 B for each bracket and one more, 5.125 bytes a character and
    17,376 B (to a byte, as 5.125 is rounded)."""
    assert bound("json", "a" * n) == pytest.approx(16_592 + 5.125 * n + 17_376, abs=1)


@pytest.mark.parametrize("n", [1000, 5000, 20_000])
def test_brackets_reserve_at_most_208_bytes_each_and_32_a_character_and_2_mib(n):
    """Past about 128 brackets the paths' budget binds: 208 B for each bracket and one more,
    32 B a character and 2 MiB, against the one frame of a chunk without brackets."""
    frames = bound("json", "[" * n) - bound("json", "a" * n)
    assert frames == 208 * (n + 1) + 32 * n + 2 * MIB - 16_592


@pytest.mark.parametrize("name", JSON_LIKE + FILES)
def test_short_chunks_reserve_the_same_at_a_depth_that_does_not_bind(name):
    """Up to 60 characters a chunk opens fewer containers than 64 levels: its reservation
    is the same at --max-json-depth 64 as at 512."""
    for length in (0, 1, 30, 60):
        assert bound(name, "a" * length, 64) == bound(name, "a" * length, 512)


@pytest.mark.parametrize("depth", [512, 64])
def test_a_short_chunk_is_counted_as_all_brackets_and_quotes(monkeypatch, depth):
    """docs/limits.md: a chunk of at most 256 characters is taken to be all brackets and
    quotes; each reader's table of those bounds (cached per settings, emptied here so it is
    made anew) holds what counting would give."""
    from server.engine import _jsonreader

    monkeypatch.setattr(_jsonreader, "_SHORT_BOUNDS", {})
    for string_starts in (False, True):
        reader = _jsonreader.JsonReader(max_depth=depth, string_starts=string_starts)
        for n in (0, 1, 2, 100, 255, 256):
            assert reader.growth_bound("a" * n) == reader._bound(n, n + 1, n + 1)
