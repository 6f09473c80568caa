"""The processors, driven through Streams.process as a servicer drives them.

For any chunking and delta mode, what the responses carry adds up to exactly the field's
final text, decoded by json.loads from the document.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import random
import re
import time
import tracemalloc
import uuid
from dataclasses import dataclass

import pytest
from helpers import (
    Rebuilder,
    Style,
    chunkings,
    chunkings_of,
    cut,
    decode,
    documents,
    encode_string,
    loads_exact,
    snapshots,
    strings,
    without_lone_surrogates,
)
from hypothesis import given
from hypothesis import strategies as st

from server.engine import (
    Append,
    FileDelta,
    InvalidArgument,
    Mode,
    PartialJson,
    ReasoningFile,
    ReasoningText,
    Set,
)
from server.engine._processors import BUILTIN_PROCESSORS, MetricProcessor, strict_json
from server.streams import Streams

APPEND, SNAPSHOT, AUTO = Mode.APPEND, Mode.SNAPSHOT, Mode.AUTO

TEXT_TITLES = {
    "plan": ("plan_markdown", "Creating a plan..."),
    "search_data_catalog": ("search_requirements", "Searching your data catalog..."),
}
FILE_TITLES = {
    "metric": "Creating metric files...",
    "dashboard": "Creating dashboard files...",
}


def file_id(chunk_id: str, file_name: str, file_type: str) -> str:
    digest = hashlib.sha256(f"{chunk_id}:{file_name}:{file_type}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


@dataclass(frozen=True)
class Request:
    chunk: str
    final: bool
    fed: int  # code points of the document sent so far, this request included


def requests(text: str, pieces: list[str], mode: int, final_alone: bool) -> list[Request]:
    """The requests a client sends for `text` cut into `pieces`, in `mode`: fragments for
    APPEND, cumulative snapshots for SNAPSHOT and AUTO (where snapshots lose nothing). The
    last piece is final, or an extra request carries only the final flag."""
    assert "".join(pieces) == text
    chunks = pieces if mode == APPEND else snapshots(pieces)
    fed = [len(s) for s in snapshots(pieces)]
    out = [Request(c, False, n) for c, n in zip(chunks, fed, strict=True)]
    if final_alone or not out:
        out.append(Request("" if mode == APPEND else text, True, len(text)))
    else:
        out[-1] = Request(out[-1].chunk, True, len(text))
    return out


def send(parser: Streams, chunk_id: str, processor: str, reqs: list[Request], mode: int):
    results = []
    for i, req in enumerate(reqs):
        result = parser.process(
            chunk_id,
            req.chunk,
            # The first request fixes processor and mode; later ones mostly leave them empty.
            processor_type=processor if i == 0 or i % 2 else "",
            mode=mode if i == 0 or i % 3 else None,
            final=req.final,
        )
        assert result.error is None, result.error
        assert result.chunk_id == chunk_id
        assert result.final == req.final
        assert not result.reset and not result.duplicate
        results.append(result)
    return results


modes = st.sampled_from([APPEND, SNAPSHOT, AUTO])

# ------------------------------------------------------------------------ plan, search


def text_documents(key: str):
    return documents(st.builds(lambda s: {key: s}, strings | st.text(max_size=300)))


def check_reasoning_text(results, chunk_id: str, title: str, expected: str) -> None:
    *loading, final = results
    chunks = []
    for result in loading:
        out = result.output
        if out is None:
            continue
        assert isinstance(out, ReasoningText)
        assert (out.id, out.title, out.secondary_title, out.status) == (
            chunk_id,
            title,
            "",
            "loading",
        )
        assert out.message_chunk, "an output with nothing new"
        assert out.message == ""
        chunks.append(out.message_chunk)
    out = final.output
    assert isinstance(out, ReasoningText)
    assert (out.id, out.title, out.secondary_title, out.status) == (
        chunk_id,
        title,
        "",
        "completed",
    )
    chunks.append(out.message_chunk)
    assert "".join(chunks) == expected
    assert out.message == expected


@pytest.mark.parametrize("processor", sorted(TEXT_TITLES))
@given(data=st.data(), mode=modes, final_alone=st.booleans())
def test_reasoning_text_adds_up_to_the_field(processor, data, mode, final_alone):
    key, title = TEXT_TITLES[processor]
    doc = data.draw(text_documents(key))
    pieces = data.draw(chunkings_of(doc.text))
    results = send(
        Streams(), "call-1", processor, requests(doc.text, pieces, mode, final_alone), mode
    )
    check_reasoning_text(results, "call-1", title, doc.value[key])
    assert results[-1].complete_text == doc.text


def test_reasoning_text_output_is_unset_when_nothing_is_new():
    parser = Streams()
    chunks = ['{"plan_', 'markdown": ', '"', "ab\\", "n", '"', "}"]
    outputs = [parser.process("p", c, processor_type="plan", mode=APPEND).output for c in chunks]
    assert [o.message_chunk if o else None for o in outputs] == [
        None,
        None,
        None,
        "ab",
        "\n",
        None,
        None,
    ]
    final = parser.process("p", "", final=True)
    assert (final.output.message_chunk, final.output.message) == ("", "ab\n")
    assert final.output.status == "completed"
    assert final.complete_text == "".join(chunks)


@pytest.mark.parametrize("processor", sorted(TEXT_TITLES))
def test_reasoning_text_in_every_chunking(processor):
    key, title = TEXT_TITLES[processor]
    field = '"# Step 1\\n\\u00e9t\\u00E9 \\ud83d\\ude00 \\"q\\"\nraw"'
    text = "```json\n{" + f'"{key}": ' + field + "}\n```"
    expected = json.loads(text.removeprefix("```json\n").removesuffix("\n```"), strict=False)
    for pieces in chunkings(text):
        results = send(Streams(), "c", processor, requests(text, pieces, APPEND, False), APPEND)
        check_reasoning_text(results, "c", title, expected[key])


# ------------------------------------------------------------------------ metric, dashboard


@dataclass(frozen=True)
class FilesDocument:
    text: str
    files: list[tuple[str, str]]  # (name, yml_content) as json.loads reads them
    name_ends: list[int]  # where each name string closes: the code points before its end


@st.composite
def files_documents(draw) -> FilesDocument:
    names = draw(st.lists(strings, max_size=4, unique=True))
    contents = [draw(strings | st.text(max_size=200)) for _ in names]
    style = Style(
        rnd=draw(st.randoms(use_true_random=True)),
        ensure_ascii=draw(st.booleans()),
        raw_controls=draw(st.booleans()),
    )
    ws = style.ws
    text = ws() + "{" + ws() + '"files"' + ws() + ":" + ws() + "["
    name_ends = []
    for i, (name, content) in enumerate(zip(names, contents, strict=True)):
        text += ("," if i else "") + ws() + "{" + ws()
        content_member = '"yml_content"' + ws() + ":" + ws() + encode_string(content, style)
        content_first = draw(st.integers(0, 4)) == 0  # the name may come second
        if content_first:
            text += content_member + ws() + "," + ws()
        text += '"name"' + ws() + ":" + ws() + encode_string(name, style)
        name_ends.append(len(text))
        if not content_first:
            text += ws() + "," + ws() + content_member
        text += ws() + "}"
    text += ws() + "]" + ws() + "}" + ws()
    decoded = decode(text)["files"]
    files = [(f["name"], f["yml_content"]) for f in decoded]
    return FilesDocument(text, files, name_ends)


def check_reasoning_file(
    results, reqs: list[Request], chunk_id: str, processor: str, doc: FilesDocument
) -> None:
    title = FILE_TITLES[processor]
    ids = {
        file_id(chunk_id, name, processor): (name, end)
        for (name, _), end in zip(doc.files, doc.name_ends, strict=True)
    }
    received: dict[str, list[str]] = {}
    *loading, final = results
    for result, req in zip(loading, reqs, strict=False):
        out = result.output
        if out is None:
            continue
        assert isinstance(out, ReasoningFile)
        assert (out.id, out.title, out.status) == (chunk_id, title, "loading")
        assert out.files, "an output with nothing new"
        assert len({f.id for f in out.files}) == len(out.files)
        for f in out.files:
            check_file_delta(f, ids, processor, "loading")
            name, name_end = ids[f.id]
            assert req.fed >= name_end, f"file {name!r} shown before its name is complete"
            assert f.text == ""
            assert f.text_chunk or f.id not in received, "a file delta with nothing new"
            received.setdefault(f.id, []).append(f.text_chunk)
    out = final.output
    assert isinstance(out, ReasoningFile)
    assert (out.id, out.title, out.status) == (chunk_id, title, "completed")
    assert [f.file_name for f in out.files] == [name for name, _ in doc.files]
    for f, (_, content) in zip(out.files, doc.files, strict=True):
        check_file_delta(f, ids, processor, "completed")
        assert f.text == content
        assert "".join(received.get(f.id, [])) + f.text_chunk == content


def check_file_delta(f: FileDelta, ids: dict, processor: str, status: str) -> None:
    assert f.id in ids, f"unexpected file id {f.id} for {f.file_name!r}"
    assert (f.file_name, f.file_type, f.version_number, f.status) == (
        ids[f.id][0],
        processor,
        1,
        status,
    )


@pytest.mark.parametrize("processor", sorted(FILE_TITLES))
@given(doc=files_documents(), data=st.data(), mode=modes, final_alone=st.booleans())
def test_reasoning_file_adds_up_to_each_file(processor, doc, data, mode, final_alone):
    pieces = data.draw(chunkings_of(doc.text))
    reqs = requests(doc.text, pieces, mode, final_alone)
    results = send(Streams(), "files-1", processor, reqs, mode)
    check_reasoning_file(results, reqs, "files-1", processor, doc)


def test_a_file_appears_as_soon_as_its_name_is_complete():
    parser = Streams()
    text = '{"files": [{"name": "a\\u00e9.yml", "yml_content": "x: 1"}]}'
    name_end = text.index('.yml"') + 5
    expected_id = file_id("m", "aé.yml", "metric")
    for i, ch in enumerate(text):
        out = parser.process("m", ch, processor_type="metric", mode=APPEND).output
        fed = i + 1
        if fed < name_end:
            assert out is None, f"output after {text[:fed]!r}"
        elif fed == name_end:
            assert out is not None and len(out.files) == 1
            f = out.files[0]
            assert (f.id, f.file_name, f.text_chunk, f.status) == (
                expected_id,
                "aé.yml",
                "",
                "loading",
            )
    assert parser.process("m", "", final=True).output.files[0].text == "x: 1"


def test_file_ids_are_the_documented_uuid():
    expected = str(uuid.UUID(bytes=hashlib.sha256(b"call-9:revenue.yml:metric").digest()[:16]))
    parser = Streams()
    text = '{"files": [{"name": "revenue.yml", "yml_content": "name: revenue"}]}'
    result = parser.process("call-9", text, processor_type="metric", final=True)
    assert [f.id for f in result.output.files] == [expected]
    other = parser.process("call-9", text, processor_type="dashboard", final=True)
    assert other.output.files[0].id != expected  # file_type is part of the id


# ------------------------------------------------------------------------ json, text


def exact(value_json: str):
    """A JSON text's value, numbers compared exactly; strict: raw control characters in
    strings are refused, as a client's JSON parser would refuse them."""
    return json.loads(value_json, parse_float=decimal.Decimal)


def exact_lenient(body: str):
    """What the engine reads from a document's body, numbers compared exactly."""
    return without_lone_surrogates(json.loads(body, parse_float=decimal.Decimal, strict=False))


@given(doc=documents(), data=st.data(), mode=modes, final_alone=st.booleans())
def test_json_deltas_rebuild_the_value(doc, data, mode, final_alone):
    pieces = data.draw(chunkings_of(doc.text))
    results = send(Streams(), "j", "json", requests(doc.text, pieces, mode, final_alone), mode)
    rebuilder = Rebuilder()
    *loading, final = results
    for result in loading:
        if result.output is None:
            continue
        assert isinstance(result.output, PartialJson)
        assert result.output.deltas, "an output with nothing new"
        assert result.output.value_json == ""
        assert all(isinstance(op, Set | Append) for op in result.output.deltas)
        rebuilder.apply(result.output.deltas)
    assert isinstance(final.output, PartialJson)
    assert all(isinstance(op, Set | Append) for op in final.output.deltas)
    rebuilder.apply(final.output.deltas)
    assert rebuilder.value == doc.value
    assert exact(final.output.value_json) == exact_lenient(doc.body)


@given(chunks=st.lists(st.text()), final_alone=st.booleans())
def test_text_processor_shows_no_output(chunks, final_alone):
    text = "".join(chunks)
    reqs = requests(text, chunks, APPEND, final_alone)
    results = send(Streams(), "t", "text", reqs, APPEND)
    assert all(r.output is None for r in results)
    assert "".join(r.delta for r in results) == text
    assert results[-1].complete_text == text
    assert all(r.complete_text == "" for r in results[:-1])


def test_empty_processor_type_means_text():
    parser = Streams()
    assert parser.process("t", '{"a": 1}').output is None
    assert parser.complete_text("t").processor_type == "text"


def test_json_top_level_number_shows_at_the_final_chunk():
    parser = Streams()
    assert parser.process("n", "12", processor_type="json", mode=APPEND).output is None
    assert parser.process("n", "34", mode=APPEND).output is None
    final = parser.process("n", "", final=True)
    assert final.output.deltas == [Set("", "1234")]
    assert exact(final.output.value_json) == 1234


def test_json_value_json_keeps_big_numbers():
    literal = "1234567890123456789012345678901234567890.5e-3"
    text = '{"n": [' + literal + ", -0, 1E+30]}"
    final = Streams().process("b", text, processor_type="json", final=True)
    assert exact(final.output.value_json) == exact(text)
    assert Rebuilder().apply(final.output.deltas).value == loads_exact(text)


@pytest.mark.parametrize("processor", ["plan", "search_data_catalog", "metric", "dashboard"])
def test_random_chunkings_of_a_fixed_document_agree(processor):
    # One realistic document per processor, cut 30 ways, each answered alike.
    rnd = random.Random(7)
    if processor in FILE_TITLES:
        text = json.dumps(
            {"files": [{"name": f"f{i}.yml", "yml_content": "a: é\n" * 20} for i in range(3)]}
        )
    else:
        text = json.dumps({TEXT_TITLES[processor][0]: "## Plan\n- step é 😀\n" * 20})
    finals = set()
    for _ in range(30):
        cuts = sorted(rnd.sample(range(len(text)), rnd.randint(1, 40)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        results = send(Streams(), "x", processor, requests(text, pieces, APPEND, False), APPEND)
        out = results[-1].output
        if isinstance(out, ReasoningFile):
            finals.add(tuple((f.id, f.file_name, f.text, f.status) for f in out.files))
        else:
            finals.add((out.message, out.status))
    assert len(finals) == 1


def test_json_value_json_is_strict_json():
    # Raw control characters and lone surrogate escapes are read, but what a client gets
    # back must parse with a strict JSON parser and hold no lone surrogate.
    text = '{"a": "x\ny\t", "b": "\\ud800", "c": "\\ud83d\\ude00"}'
    final = Streams().process("v", text, processor_type="json", final=True)
    assert exact(final.output.value_json) == {"a": "x\ny\t", "b": "\ufffd", "c": "😀"}


# ------------------------------------------------------------------------ files: what is one


def final_files(text: str, processor: str = "metric") -> list[tuple[str, str]]:
    result = Streams().process("f", text, processor_type=processor, final=True)
    assert result.error is None, result.error
    return [(f.file_name, f.text) for f in result.output.files]


@pytest.mark.parametrize("processor", sorted(FILE_TITLES))
def test_only_elements_of_the_first_files_array_are_files(processor):
    cases = {
        '{"files": {"10000000000": {"name": "x"}}}': [],
        '{"files": {"' + "9" * 4000 + '": {"name": "x"}}}': [],
        '{"files": [{"name": "a"}], "' + "9" * 4000 + '": 1}': [("a", "")],
        '{"files": {"0": {"name": "x"}}, "files": [{"name": "y", "yml_content": "b"}]}': [
            ("y", "b")
        ],
        '{"files": [{"name": "a"}], "files": [{"name": "b"}, {"name": "c"}]}': [("a", "")],
        '{"files": [1, {"name": "a"}, "s", [{"name": "no"}], {"name": "b"}, null]}': [
            ("a", ""),
            ("b", ""),
        ],
        '{"x": {"files": [{"name": "no"}]}, "files": [{"name": "a", "files": [{"name": "no"}]}]}': [
            ("a", "")
        ],
        '{"files": [{"name": 1, "name": "late", "yml_content": 2, "yml_content": "c"}]}': [
            ("late", "c")
        ],
        '{"files": [{"name": "a", "name": "b", "yml_content": "c", "yml_content": "d"}]}': [
            ("a", "c")
        ],
    }
    for text, files in cases.items():
        assert final_files(text, processor) == files, text
    # Past int()'s 4,300 digits a key is past the longest path too.
    text = '{"files": {"' + "9" * 5000 + '": {"name": "x"}}}'
    error = Streams().process("f", text, processor_type=processor).error
    assert error.message == "invalid JSON: path longer than 4096 characters at offset 11"


def test_a_file_index_allocates_nothing():
    # An index used to grow the list of files up to it: ten billion froze the server.
    text = '{"files": {"100000": {"name": "x"}}}'
    processor = MetricProcessor("m")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for chunk in cut(text, range(4, len(text), 4)):
            processor.process(chunk, final=False, complete_text=lambda: text)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024
    assert processor.process("", final=True, complete_text=lambda: text).files == []


# ------------------------------------------------------------------------ files: name limit

NAME_HEAD = '{"files": [{"yml_content": "c", "name": '


def name_cuts(text: str, name_at: int) -> list[list[str]]:
    return [
        [text],
        cut(text, range(1, len(text))),
        cut(text, range(5, len(text), 5)),
        [text[:name_at], text[name_at:]],
        [text[: name_at + 1], text[name_at + 1 :]],
        [text[: name_at + 600], text[name_at + 600 :]],
    ]


def run_files(chunks: list[str], processor: str = "metric") -> list:
    p = BUILTIN_PROCESSORS[processor]("m")
    text = "".join(chunks)
    outputs = [p.process(c, final=False, complete_text=lambda: text) for c in chunks]
    return [*outputs, p.process("", final=True, complete_text=lambda: text)]


@pytest.mark.parametrize("processor", sorted(FILE_TITLES))
def test_a_file_name_of_1024_characters_is_fine_and_one_more_fails_at_its_quote(processor):
    name = "n" * 1023 + "\\u00e9"  # an escape is one character of the name
    fits = NAME_HEAD + '"' + name + '", "more": "x"}, {"name": "b"}]}'
    for chunks in name_cuts(fits, len(NAME_HEAD)):
        final = run_files(chunks, processor)[-1]
        assert [f.file_name for f in final.files] == ["n" * 1023 + "é", "b"]
    too_long = NAME_HEAD + '"' + name + 'x", "more": "x"}, {"name": "b"}]}'
    for chunks in name_cuts(too_long, len(NAME_HEAD)):
        with pytest.raises(InvalidArgument) as info:
            run_files(chunks, processor)
        assert info.value.message == (
            f"file name longer than 1024 characters at offset {len(NAME_HEAD)}"
        )


def test_a_long_name_fails_before_it_is_read_whole():
    p = MetricProcessor("m")
    p.process(NAME_HEAD + '"', final=False, complete_text=str)
    with pytest.raises(InvalidArgument):
        for _ in range(2000):
            p.process("n", final=False, complete_text=str)
    assert p.held_bytes < 8 * 1024


def test_a_name_in_an_ignored_array_may_be_long():
    long = "n" * 5000
    text = '{"files": [], "files": [{"name": "' + long + '"}], "x": {"name": "' + long + '"}}'
    assert final_files(text) == []


# ------------------------------------------------------------------------ held bytes


def held_checked(processor: str, chunks: list[str]) -> None:
    p = BUILTIN_PROCESSORS[processor]("h")
    text = "".join(chunks)
    assert p.held_bytes == p.recount_held_bytes()
    for chunk in chunks:
        p.process(chunk, final=False, complete_text=lambda: text)
        assert p.held_bytes == p.recount_held_bytes(), chunk
    p.process("", final=True, complete_text=lambda: text)
    assert p.held_bytes == p.recount_held_bytes()


@given(doc=documents(), data=st.data())
def test_json_held_bytes_is_kept_equal_to_a_recount(doc, data):
    held_checked("json", data.draw(chunkings_of(doc.text)))


@pytest.mark.parametrize("processor", sorted(TEXT_TITLES))
@given(data=st.data())
def test_reasoning_text_held_bytes_is_kept_equal_to_a_recount(processor, data):
    doc = data.draw(text_documents(TEXT_TITLES[processor][0]))
    held_checked(processor, data.draw(chunkings_of(doc.text)))


@given(doc=files_documents(), data=st.data())
def test_files_held_bytes_is_kept_equal_to_a_recount(doc, data):
    held_checked("metric", data.draw(chunkings_of(doc.text)))


def test_files_held_bytes_with_names_in_pieces_and_content_first():
    text = json.dumps(
        {"files": [{"yml_content": "é😀\n" * 50, "name": f"f{i}😀.yml"} for i in range(20)]}
    )
    for step in (1, 7, 300):
        held_checked("dashboard", cut(text, range(step, len(text), step)))


def test_the_text_processor_holds_nothing():
    p = BUILTIN_PROCESSORS["text"]("t")
    assert p.held_bytes == p.recount_held_bytes() == 0


# ------------------------------------------------------------------------ strict_json


def regex_strict_json(value_text: str) -> str:
    """strict_json as it was, by regular expressions: the reference for its output."""
    not_strict = re.compile(r"[\x00-\x1f]|\\u[dD][89a-fA-F]")

    def strict_string(match: re.Match[str]) -> str:
        token = match.group()
        if not not_strict.search(token):
            return token
        text = without_lone_surrogates(json.loads(token, strict=False))
        return json.dumps(text, ensure_ascii=False)

    if not not_strict.search(value_text):
        return value_text
    return re.sub(r'"(?:[^"\\]|\\.)*"', strict_string, value_text, flags=re.DOTALL)


@given(doc=documents())
def test_strict_json_rewrites_exactly_the_strings_it_must(doc):
    assert strict_json(doc.body) == regex_strict_json(doc.body)
    assert exact(strict_json(doc.body)) == exact_lenient(doc.body)


@pytest.mark.parametrize(
    "body",
    [
        '"\\\\"',
        '["\\\\\\"\x01", "\\\\ud800", "\\\\\\ud800", "a\\"b\\\\"]',
        '{"\x01k": ["\\ud83d\\ude00", "\\uDFFF\\u0041"], "\\u0000": "\\n\\t\x7f"}',
        '[\n  "x",\n\t"y\x1f"\r\n]',
        '"' + "\\\\" * 100 + '\\"\x02"',
    ],
)
def test_strict_json_on_escapes_next_to_quotes(body):
    assert strict_json(body) == regex_strict_json(body)
    assert exact(strict_json(body)) == exact_lenient(body)


def test_strict_json_of_a_long_string_with_one_control_character_is_linear():
    # The regex this replaced held ~150 bytes a character and took seconds on 16 MiB.
    def run(mib: int) -> tuple[float, int]:
        text = '{"a": "' + "x\\\\" * (mib << 19) + '\x01"}'
        tracemalloc.start()
        try:
            started = time.perf_counter()
            out = strict_json(text)
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert out.endswith('\\u0001"}')
        return seconds, peak / len(text)

    small, small_peak = min(run(1) for _ in range(3))
    large, large_peak = min(run(8) for _ in range(2))
    assert large_peak < 6 and small_peak < 6
    assert large < 8 * 4 * small + 0.5, (small, large)
