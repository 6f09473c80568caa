"""The built-in processors called directly, as a session calls them: which values of a
field they show, the depth they read to, and an unfinished document at the final chunk."""

from __future__ import annotations

import json

import pytest

from server.engine import InvalidArgument, ReasoningFile, ReasoningText
from server.engine._processors import BUILTIN_PROCESSORS, file_id

JSON_PROCESSORS = ["json", "plan", "search_data_catalog", "metric", "dashboard"]
TEXT_FIELDS = {"plan": "plan_markdown", "search_data_catalog": "search_requirements"}


def run(processor, pieces: list[str], *, final: bool = True) -> list:
    """The outputs of `pieces` fed in order; the last one final if `final`."""
    text = "".join(pieces)
    outs = []
    for k, piece in enumerate(pieces):
        last = final and k == len(pieces) - 1
        outs.append(processor.process(piece, final=last, complete_text=lambda: text))
    return outs


def message_chunks(outs: list) -> list[str]:
    return [o.message_chunk if o else None for o in outs]


@pytest.mark.parametrize("name", sorted(TEXT_FIELDS))
@pytest.mark.parametrize("whole", [True, False])
def test_a_repeated_field_shows_only_its_first_string(name, whole):
    """Contract: nothing shown is ever taken back. The field's first string is shown as it
    grows; a repeated key would replace it, so its value is not shown at all."""
    key = TEXT_FIELDS[name]
    text = f'{{"{key}": "ab", "{key}": "cd", "x": 1, "{key}": "ef"}}'
    pieces = [text] if whole else list(text)
    outs = run(BUILTIN_PROCESSORS[name]("c"), pieces)
    assert "".join(c for c in message_chunks(outs) if c) == "ab"
    assert outs[-1].message == "ab"


@pytest.mark.parametrize("name", sorted(TEXT_FIELDS))
@pytest.mark.parametrize("first", ["{}", '{"a": "x"}', "[]", '["x"]', "5", "null", "true"])
def test_a_field_that_is_not_a_string_at_first_shows_its_later_string(name, first):
    """Contract (JSON readers): a repeated key keeps its last value, as json.loads does; a
    non-string value shows no text, so the later string is the field's text."""
    key = TEXT_FIELDS[name]
    text = f'{{"{key}": {first}, "{key}": "later"}}'
    assert json.loads(text)[key] == "later"
    for pieces in ([text], list(text)):
        outs = run(BUILTIN_PROCESSORS[name]("c"), pieces)
        assert "".join(c for c in message_chunks(outs) if c) == "later"
        assert isinstance(outs[-1], ReasoningText) and outs[-1].message == "later"


@pytest.mark.parametrize("name", JSON_PROCESSORS)
def test_a_processor_made_without_a_depth_reads_the_contract_default_512(name):
    """Contract: depth counts open containers; with the default 512, 512 nested [ are fine
    and the 513th is the error, at its own offset."""
    run(BUILTIN_PROCESSORS[name]("c"), ["[" * 512], final=False)
    with pytest.raises(InvalidArgument, match="nesting deeper than 512 at offset 512$"):
        run(BUILTIN_PROCESSORS[name]("c"), ["[" * 513], final=False)


@pytest.mark.parametrize("name", JSON_PROCESSORS)
@pytest.mark.parametrize("depth", [1, 3, 600])
def test_a_processor_reads_to_the_depth_it_is_given(name, depth):
    """Contract limits: --max-json-depth sets the depth; one more container is invalid."""
    run(BUILTIN_PROCESSORS[name]("c", max_json_depth=depth), ["[" * depth], final=False)
    with pytest.raises(InvalidArgument, match=f"nesting deeper than {depth} at offset {depth}$"):
        run(BUILTIN_PROCESSORS[name]("c", max_json_depth=depth), ["[" * (depth + 1)], final=False)


@pytest.mark.parametrize("name", JSON_PROCESSORS)
@pytest.mark.parametrize(
    "pieces",
    [['{"plan_markdown": "ab'], ['{"files": [{"name": "a"'], ["[1, ", "2"], ["{", '"k"'], ["  "]],
)
def test_a_final_chunk_on_unfinished_json_is_the_end_of_json_error(name, pieces):
    """Contract: a final chunk on JSON that is still unfinished gets "unexpected end of
    JSON at offset N", N the length of the text."""
    end = len("".join(pieces))
    with pytest.raises(InvalidArgument, match=f"^unexpected end of JSON at offset {end}$"):
        run(BUILTIN_PROCESSORS[name]("c"), pieces)


def file_deltas(out) -> list[tuple[str, str]]:
    """(file_name, text_chunk) of each FileDelta of one output."""
    assert out is None or isinstance(out, ReasoningFile)
    return [(f.file_name, f.text_chunk) for f in out.files] if out else []


@pytest.mark.parametrize("name", ["metric", "dashboard"])
def test_every_file_whose_name_completes_in_a_chunk_appears_in_it(name):
    """Contract: a file appears, with an empty text_chunk, once its name string is complete;
    one FileDelta per file that has something new."""
    first = '{"files": [{"name": "a", "yml_content": "x"}, {"name": "b"}, {"name": "c"'
    outs = run(BUILTIN_PROCESSORS[name]("m"), [first, ', "yml_content": "y"}]}'], final=False)
    assert file_deltas(outs[0]) == [("a", "x"), ("b", ""), ("c", "")]
    assert file_deltas(outs[1]) == [("c", "y")]
    assert [f.id for f in outs[0].files] == [file_id("m", n, name) for n in "abc"]


@pytest.mark.parametrize("name", ["metric", "dashboard"])
def test_content_after_the_name_shows_in_the_chunk_that_brings_it(name):
    """Contract: one FileDelta per file that has something new (no output when no file
    has); its text_chunk is the content the chunk added. The final response lists every
    file with its full text."""
    pieces = ['{"files": [{"name": "a", "yml_content": "x', "yz", "", '"}, {"na', "me", '": "b"']
    processor = BUILTIN_PROCESSORS[name]("m")
    outs = run(processor, pieces, final=False)
    assert [file_deltas(o) if o else None for o in outs] == [
        [("a", "x")],
        [("a", "yz")],
        None,
        None,
        None,
        [("b", "")],
    ]
    assert processor.held_bytes == processor.recount_held_bytes()
    final = processor.process(', "yml_content": "q"}]}', final=True, complete_text=str)
    assert [(f.file_name, f.text_chunk, f.text, f.status) for f in final.files] == [
        ("a", "", "xyz", "completed"),
        ("b", "q", "q", "completed"),
    ]
    assert processor.held_bytes == processor.recount_held_bytes()


@pytest.mark.parametrize("name", ["metric", "dashboard"])
@pytest.mark.parametrize("whole", [True, False])
def test_only_the_first_files_array_is_read(name, whole):
    """Nothing shown is taken back (contract), so of repeated "files" keys only the first
    array's elements are files (the processor's rule): a "files" object before it is not
    an array, and a later array is ignored, even where its paths are those of the first."""
    text = (
        '{"files": {"0": {"name": "o", "yml_content": "no"}}, '
        '"files": [5, {"name": "a"}], '
        '"files": [{"name": "b"}, {"yml_content": "x", "name": "c"}]}'
    )
    outs = run(BUILTIN_PROCESSORS[name]("m"), [text] if whole else list(text))
    assert [(f.file_name, f.text) for f in outs[-1].files] == [("a", "")]
    if not whole:
        assert [d for o in outs[:-1] if o for d in file_deltas(o)] == [("a", "")]


@pytest.mark.parametrize("name", ["plan", "search_data_catalog", "metric", "dashboard"])
def test_the_secondary_title_is_empty(name):
    """Contract: secondary_title `""`, for the file processors as for plan."""
    text = '{"files": [{"name": "a", "yml_content": "b"}], "plan_markdown": "c", '
    text += '"search_requirements": "d"}'
    outs = [o for o in run(BUILTIN_PROCESSORS[name]("c"), list(text)) if o is not None]
    assert outs and all(o.secondary_title == "" for o in outs)
