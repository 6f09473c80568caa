"""What a hostile text can make a processor hold and emit, held to bounds in the text.

- Every op's path is at most 4096 characters, and the paths of the ops one chunk makes are
  at most 8 characters a character of the chunk plus 512 Ki; past either the processor
  stops with INVALID_ARGUMENT at an offset.
- A processor's `held_bytes` grows by at most PROCESSOR_GROWTH_PER_CHAR a character of a
  chunk plus PROCESSOR_GROWTH_BASE, what the engine reserves for a chunk before it reads it.
- `held_bytes` is an upper bound of what the processor really holds, as tracemalloc counts.
"""

from __future__ import annotations

import gc
import json
import re
import tracemalloc

import pytest
from helpers import chunkings_of, cut, documents
from hypothesis import given
from hypothesis import strategies as st

from server.engine import InvalidArgument, Mode, PartialJson
from server.engine._processors import BUILTIN_PROCESSORS
from server.streams import Streams

APPEND = Mode.APPEND
JSON_PROCESSORS = ["json", "plan", "search_data_catalog", "metric", "dashboard"]
BUDGET = re.compile(r"^JSON paths of one chunk would pass (\d+) characters at offset (\d+)$")


def pieces(text: str, size: int) -> list[str]:
    return cut(text, range(size, len(text), size))


def send(processor: str, chunks: list[str]) -> list:
    parser = Streams()
    results = [parser.process("x", chunks[0], processor_type=processor, mode=APPEND)]
    results += [parser.process("x", chunk) for chunk in chunks[1:]]
    return results


def path_chars(result) -> int:
    output = result.output
    return sum(len(op.path) for op in output.deltas) if isinstance(output, PartialJson) else 0


# ----------------------------------------------------------------- the attacks


def test_a_million_character_key_over_an_array_of_zeros():
    # Each element would have repeated the key in its path: 250 MB of paths a chunk.
    chunks = ['{"' + "k" * 1_000_000 + '": [', *["0," * 250] * 20]
    first, *later = send("json", chunks)
    assert first.error.message == "invalid JSON: path longer than 4096 characters at offset 1"
    assert first.output is None
    assert all(r.error is None and r.output is None for r in later)


def test_512_nested_arrays_then_400_kb_of_zeros():
    body = "0," * 200_000
    # In one chunk: the paths would be 198 MiB; the chunk fails at the op that passes.
    result = send("json", ["[" * 512 + body])[0]
    match = BUDGET.match(result.error.message)
    assert match, result.error
    assert int(match[1]) == 8 * (512 + len(body)) + 512 * 1024
    # In 500-character chunks each response stays within its chunk's budget.
    chunks = ["[" * 512, *pieces(body, 500)]
    results = send("json", chunks)
    for result, chunk in zip(results, chunks, strict=True):
        assert result.error is None
        assert path_chars(result) <= 8 * len(chunk) + 512 * 1024


def test_256_levels_of_32_kib_keys_under_plan():
    # Every open container kept its own full path: 1.1 GiB for 8 MiB of text.
    text = ('{"' + "k" * 32 * 1024 + '": ') * 256
    parser = Streams()
    result = parser.process("p", text[:1_000_000], processor_type="plan", mode=APPEND)
    assert result.error.message == "invalid JSON: path longer than 4096 characters at offset 1"
    assert parser.process("p", text[1_000_000:2_000_000]).error is None


def test_keys_within_the_limit_at_every_depth_hold_at_most_depth_times_a_path():
    # The worst the stack can hold: 512 open containers, each at a path near 4096.
    key = "😀" * 7  # UCS-4 text, 4 bytes a character
    text = "".join('{"' + key + '": ' for _ in range(512))
    processor = BUILTIN_PROCESSORS["plan"]("p")
    for chunk in pieces(text, 256):
        processor.process(chunk, final=False, complete_text=lambda: text)
    assert processor.held_bytes == processor.recount_held_bytes()
    assert processor.held_bytes < 512 * (4096 * 4 + 512)


# ----------------------------------------------------------------- growth per chunk


def hostile_texts() -> dict[str, tuple[str, str]]:
    deep_keys = "".join('{"' + "k" * 6 + '": ' for _ in range(512))
    return {
        "brackets": ("json", "[" * 512 + "]" * 512),
        "deep keys": ("plan", deep_keys),
        "deep long keys": ("json", "".join('{"' + "é" * 500 + '": ' for _ in range(8))),
        "zeros": ("json", "[" * 512 + "0," * 20_000),
        "empty files": ("metric", '{"files": [' + "{}," * 20_000 + "{}]}"),
        "named files": ("dashboard", '{"files": [' + '{"name":""},' * 5_000 + "{}]}"),
        "strings": ("metric", '{"x": [' + '"",' * 20_000 + '""]}'),
        "long number": ("json", "[" + "9" * 50_000 + "]"),
        "pending key": ("json", '{"' + "😀" * 4000 + '": 1}'),
        "plan": ("plan", json.dumps({"plan_markdown": "é😀\n\t" * 20_000}, ensure_ascii=False)),
    }


def check_growth(processor_name: str, chunks: list[str]) -> None:
    """Each chunk, the final included, grows held_bytes within the processor's own growth
    bound, which the engine reserves, also when the processor stops at an error (after
    which the engine never calls it again)."""
    processor = BUILTIN_PROCESSORS[processor_name]("g")

    def growth_bound(chunk: str) -> int:
        return processor.growth_bound(chunk)

    text = "".join(chunks)
    held = processor.held_bytes
    for chunk, final in [*((c, False) for c in chunks), ("", True)]:
        try:
            processor.process(chunk, final=final, complete_text=lambda: text)
        except InvalidArgument:
            assert processor.held_bytes - held <= growth_bound(chunk)
            return
        assert processor.held_bytes - held <= growth_bound(chunk), len(chunk)
        held = processor.held_bytes


@pytest.mark.parametrize("name", sorted(hostile_texts()))
@pytest.mark.parametrize("size", [1, 16, 1000, 1 << 20])
def test_held_bytes_grows_within_the_engines_reservation(name, size):
    processor, text = hostile_texts()[name]
    if size == 1 and len(text) > 20_000:
        text = text[:20_000]
    check_growth(processor, pieces(text, size))


@pytest.mark.parametrize("processor", JSON_PROCESSORS)
@given(doc=documents(), data=st.data())
def test_held_bytes_grows_within_the_reservation_for_any_document(processor, doc, data):
    check_growth(processor, data.draw(chunkings_of(doc.text)))


# ----------------------------------------------------------------- held_bytes is an upper bound


def measured(processor_name: str, text: str, size: int) -> tuple[int, int]:
    """(held_bytes, what tracemalloc saw the processor come to hold) after `text` is fed in
    pieces of `size`, each made while traced: a processor may keep a piece itself."""
    processor = BUILTIN_PROCESSORS[processor_name]("m")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, len(text), size):
            processor.process(text[start : start + size], final=False, complete_text=str)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return processor.held_bytes, grown


def many_files() -> str:
    files = [{"name": f"f{i}.yml", "yml_content": f"a: {i}\n"} for i in range(20_000)]
    return json.dumps({"files": files})


BIG_SHAPES = {
    "long plan": (
        "plan",
        '{"plan_markdown": "' + "## Step é 😀 \\n\\u00e9 \\ud83d\\ude80 " * 40_000,
        16,
    ),
    "many small files": ("metric", many_files(), 64),
    "files named after their content": (
        "dashboard",
        json.dumps({"files": [{"yml_content": "x" * 50, "name": f"{i}😀"} for i in range(5000)]}),
        7,
    ),
    "deep keys near the longest path": (
        "json",
        "".join('{"' + "😀" * 9 + '": ' for _ in range(400)),
        16,
    ),
    "deep arrays": ("json", '{"' + "k" * 3000 + '": ' + "[" * 500, 16),
    "a long number": ("json", "[" + "7" * 400_000, 16),
    "a key in one-character pieces": ("json", '{"' + "é😀" * 2000, 1),
}


@pytest.mark.parametrize("shape", sorted(BIG_SHAPES))
def test_held_bytes_is_an_upper_bound_of_the_memory_held(shape):
    processor, text, size = BIG_SHAPES[shape]
    held, grown = measured(processor, text, size)
    assert grown > 100_000, "the shape holds too little to measure"
    assert grown <= held, (grown, held)
