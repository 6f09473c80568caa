"""Fuzzing the engine.

Invariant: whatever a client sends (any text, mutated JSON, any chunking, any processor,
mode, sequence, namespace or final flag, valid or not), every engine call either returns a
result or raises the engine's own EngineError, never any other exception; `process` never
raises at all, and a refusal comes back as an EngineError in the result. No call hangs:
each finishes within PER_CALL_SECONDS. Memory stays bounded: the peak traced while an
example runs stays within a fixed multiple of its input. Besides, every JSON op the
engine emits, even for text that later turns out invalid, applies cleanly to what came
before it.

`make fuzz` runs this file with the `fuzz` hypothesis profile (100,000 examples per test);
plain `make test` runs a small default.
"""

from __future__ import annotations

import os
import signal
import time
import tracemalloc
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import Rebuilder, chunkings_of, documents, snapshots
from hypothesis import given, settings
from hypothesis import strategies as st

from server.engine import (
    ChunkResult,
    EngineError,
    InvalidArgument,
    PartialJson,
    ResourceExhausted,
)
from server.engine._jsonreader import JsonReader
from server.engine._tracker import Mode, Tracker
from server.streams import Streams

PER_CALL_SECONDS = 5.0
MEMORY_BASE = 16 << 20  # interpreter and engine overhead that does not grow with input
MEMORY_PER_INPUT_BYTE = 400
STATUSES = {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "NOT_FOUND"}
PROCESSORS = ["", "text", "json", "plan", "search_data_catalog", "metric", "dashboard"]
LONG_RUN = os.environ.get("CHUNKWISE_HYPOTHESIS_PROFILE") == "fuzz"

# A fuzz run is long by design; a hang is still caught per call by `bounded`.
pytestmark = pytest.mark.timeout(0 if LONG_RUN else 300)
# Outside a fuzz run, few examples: generating conversations costs more than running them.
few_examples = settings() if LONG_RUN else settings(max_examples=40)


class CallTooSlow(Exception):
    pass


@contextmanager
def bounded(what: str):
    """Fail if the body runs longer than PER_CALL_SECONDS, even if it never returns.

    pytest-timeout may use SIGALRM too: its handler and remaining time are put back."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def too_slow(signum, frame):
        raise CallTooSlow(f"{what} ran over {PER_CALL_SECONDS} s")

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, too_slow)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, PER_CALL_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            left = previous_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), previous_interval)


@contextmanager
def memory_bounded(input_chars: int):
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = MEMORY_BASE + MEMORY_PER_INPUT_BYTE * 4 * input_chars
    assert peak <= limit, f"peak {peak} bytes for {input_chars} code points of input"


def call(what: str, fn: Callable[[], Any]) -> Any:
    """Run one engine call: its result, or the EngineError it raised; nothing else."""
    with bounded(what):
        try:
            return fn()
        except EngineError as exc:
            assert exc.status_hint in STATUSES, exc
            assert isinstance(exc.message, str)
            return exc


# ------------------------------------------------------------------------ inputs

# Text reaches the engine from proto strings, which are valid UTF-8: no lone surrogates.
characters = st.characters(codec="utf-8")
significant = st.sampled_from("{}[]\",:\\/ \n\tu0123456789eE+-.truefalsnl`'NaI")
random_texts = st.text(alphabet=characters | significant, max_size=200)


@st.composite
def mutated_json(draw) -> str:
    """A valid JSON document with a few characters inserted, deleted or replaced."""
    text = draw(documents()).text
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(characters | significant)
        if how == "insert":
            text = text[:at] + char + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at + 1 :]
    return text


texts = st.one_of(random_texts, mutated_json(), documents().map(lambda d: d.text))


@dataclass(frozen=True)
class Request:
    id_index: int
    chunk: str
    processor_type: str
    mode: Mode | None
    final: bool
    sequence: int
    namespace: str


@st.composite
def conversations(draw) -> list[Request | str]:
    """Requests for up to three ids, interleaved, each id's text cut into pieces; now and
    then a request that breaks a rule, and reads ("read:N"), clears ("clear:N") and
    expiry sweeps ("expire") in between."""
    streams = []
    for index in range(draw(st.integers(1, 3))):
        text = draw(texts)
        pieces = draw(chunkings_of(text))
        processor = draw(st.sampled_from(PROCESSORS))
        mode = draw(st.sampled_from([None, *Mode]))
        chunks = pieces if mode is not Mode.SNAPSHOT and draw(st.booleans()) else snapshots(pieces)
        streams.append([(index, chunk, processor, mode) for chunk in chunks])
    out: list[Request | str] = []
    sequence = 0
    while any(streams):
        stream = draw(st.sampled_from([s for s in streams if s]))
        index, chunk, processor, mode = stream.pop(0)
        sequence += 1
        out.append(
            Request(
                id_index=index,
                chunk=chunk,
                processor_type=draw(st.sampled_from([processor, processor, "", "nope", "json"])),
                mode=draw(st.sampled_from([mode, mode, None, *Mode])),
                final=not stream or draw(st.integers(0, 9)) == 0,
                sequence=draw(st.sampled_from([0, sequence, sequence, max(sequence - 2, 0)])),
                namespace=draw(st.sampled_from(["", "", "tenant"])),
            )
        )
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from([f"read:{index}", f"clear:{index}", "expire"])))
    return out


def _input_size(steps: list[Request | str]) -> int:
    return sum(len(s.chunk) for s in steps if isinstance(s, Request))


# ------------------------------------------------------------------------ the facade

IDS = ["call-1", "é" * 3, "x"]


@few_examples
@given(steps=conversations())
def test_streaming_parser_returns_a_result_for_anything(steps):
    parser = Streams()
    rebuilders: dict[tuple[str, str], Rebuilder] = {}
    with memory_bounded(_input_size(steps)):
        for step in steps:
            if isinstance(step, str):
                _side_call(parser, step, rebuilders)
                continue
            chunk_id = IDS[step.id_index]
            result = call(
                "process",
                lambda s=step, c=chunk_id: parser.process(
                    c,
                    s.chunk,
                    processor_type=s.processor_type,
                    mode=s.mode,
                    final=s.final,
                    sequence=s.sequence,
                    namespace=s.namespace,
                ),
            )
            assert isinstance(result, ChunkResult), f"process raised {result!r}"
            assert (result.chunk_id, result.sequence) == (chunk_id, step.sequence)
            assert result.final or not result.complete_text
            if result.error is not None:
                assert isinstance(result.error, EngineError)
                assert result.error.status_hint in STATUSES
            _check_ops(result, (step.namespace, chunk_id), rebuilders)


def _side_call(parser: Streams, step: str, rebuilders: dict) -> None:
    if step == "expire":
        assert isinstance(call("expire", parser.expire), int)
        return
    kind, index = step.split(":")
    chunk_id = IDS[int(index)]
    if kind == "read":
        call("complete_text", lambda: parser.complete_text(chunk_id))
    else:
        assert call("clear", lambda: parser.clear(chunk_id)) in (True, False)
        rebuilders.pop(("", chunk_id), None)


def _check_ops(result: ChunkResult, key: tuple[str, str], rebuilders: dict) -> None:
    """JSON ops of one id's responses apply in order, from a reset or a new id on."""
    if result.duplicate:
        return
    if result.reset:
        rebuilders.pop(key, None)
    if isinstance(result.output, PartialJson):
        rebuilders.setdefault(key, Rebuilder()).apply(result.output.deltas)
    if result.final:  # the id is cleared: its next request starts a new value
        rebuilders.pop(key, None)


# ------------------------------------------------------------------------ the reader


@given(text=texts, data=st.data())
def test_json_reader_emits_ops_or_its_error(text, data):
    pieces = data.draw(chunkings_of(text))
    reader, rebuilder, failed = JsonReader(), Rebuilder(), None
    with memory_bounded(len(text)):
        for piece in [*pieces, None]:
            got = call("feed" if piece is not None else "close", _reader_step(reader, piece))
            if failed is not None:
                assert isinstance(got, InvalidArgument), "a call after an error succeeded"
                assert got.message == failed.message
            elif isinstance(got, EngineError):
                assert isinstance(got, InvalidArgument)
                assert "at offset" in got.message
                failed = got
            else:
                rebuilder.apply(got)


def _reader_step(reader: JsonReader, piece: str | None) -> Callable[[], Any]:
    return reader.close if piece is None else (lambda: reader.feed(piece))


@few_examples
@given(text=texts, data=st.data())
def test_json_reader_depth_limit_never_raises_another_error(text, data):
    depth = data.draw(st.integers(1, 4))
    reader = JsonReader(max_depth=depth)
    for piece in data.draw(chunkings_of(text)):
        got = call("feed", lambda p=piece: reader.feed(p))
        if isinstance(got, EngineError):
            break


# ------------------------------------------------------------------------ the tracker


@given(
    chunks=st.lists(random_texts, max_size=12),
    mode=st.sampled_from(list(Mode)),
    limit=st.none() | st.integers(1, 400),
)
def test_tracker_returns_a_delta_or_refuses_within_the_limit(chunks, mode, limit):
    tracker = Tracker(mode)
    for chunk in chunks:
        before = tracker.text
        got = call("add", lambda c=chunk: tracker.add(c, max_text_bytes=limit))
        if isinstance(got, EngineError):
            assert isinstance(got, ResourceExhausted)
            assert tracker.text == before
        else:
            delta, reset = got
            assert tracker.text == (delta if reset else before + delta)
        if limit is not None:
            assert len(tracker.text.encode()) <= limit


# ------------------------------------------------------------------------ hostile inputs

HOSTILE = {
    "100k open brackets": "[" * 100_000,
    "100k open objects": '{"a":' * 100_000,
    "100k backslashes": '"' + "\\" * 100_000,
    "100k unicode escapes": '"' + "\\ud83d" * 100_000,
    "1M digits": "1" * 1_000_000,
    "1M-character key": '{"' + "k" * 1_000_000,
    "1M spaces": " " * 1_000_000,
    "1M backticks": "`" * 1_000_000,
    "5k files": '{"files": [' + '{"name": "n", "yml_content": "y"},' * 5_000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("processor", ["json", "metric", "plan"])
def test_hostile_input_in_pieces_is_answered_promptly(name, processor):
    text = HOSTILE[name]
    parser = Streams()
    started = time.monotonic()
    for i in range(0, len(text), 4096):
        result = call(
            "process",
            lambda i=i: parser.process(
                "h", text[i : i + 4096], processor_type=processor, mode=Mode.APPEND
            ),
        )
        assert isinstance(result, ChunkResult)
    final = call("process", lambda: parser.process("h", "", final=True))
    assert isinstance(final, ChunkResult) and final.complete_text == text
    assert time.monotonic() - started < 30
