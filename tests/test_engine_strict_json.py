"""strict_json: the final value_json is strict RFC 8259 JSON, its strings written as
json.dumps writes them wherever the reader accepted what strict JSON does not."""

from __future__ import annotations

import json

import pytest

from server.engine._processors import _CONTROL_ESCAPES, strict_json

CONTROLS = [chr(c) for c in range(0x20)]


@pytest.mark.parametrize("char", CONTROLS)
def test_a_raw_control_character_is_written_as_json_dumps_writes_it(char):
    """Contract: value_json is strict JSON, although the reader accepts raw control
    characters in strings; a string that holds one is written as json.dumps writes it,
    its quotes and backslashes included."""
    value = f'a{char}"\\/b{char}'
    written = strict_json(json.dumps(value).replace(json.dumps(char)[1:-1], char))
    assert written == json.dumps(value)
    assert json.loads(written) == value


def test_the_escape_table_is_json_dumps_for_each_character_it_escapes():
    expected = {ord(c): json.dumps(c)[1:-1] for c in [*CONTROLS, '"', "\\"]}
    assert _CONTROL_ESCAPES == expected


@pytest.mark.parametrize("char", CONTROLS)
def test_only_strings_that_need_it_are_rewritten(char):
    """Formatting and numbers are kept as written: only the string holding a raw control
    character changes."""
    text = f'{{ "k\\u0041" : [ 1.50E+3, "\\u00e9\\n", "x{char}y" ] }}'
    escaped = json.dumps(char)[1:-1]
    assert strict_json(text) == f'{{ "k\\u0041" : [ 1.50E+3, "\\u00e9\\n", "x{escaped}y" ] }}'
