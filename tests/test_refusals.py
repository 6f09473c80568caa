"""Every refusal, sent as a `final` request: "a bad request gets a response with `error` set
and changes nothing for that id", and "a refused request is not applied". So the answer's
`final` is false, it carries no text, and the id stays open with its text and sequence, to
be finished by the next good request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from helpers import apply_ops, loads_exact

from server.engine import Limits, Mode, NotFound
from server.streams import Streams

APPEND, SNAPSHOT = Mode.APPEND, Mode.SNAPSHOT


@dataclass(frozen=True)
class Refusal:
    status: str
    chunk: str = "more"
    kwargs: dict = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    chunk_id: str = "open"


# Each is refused for the open id below: a text id in APPEND mode holding "hello", sequence 1.
REFUSALS = {
    "another processor": Refusal("FAILED_PRECONDITION", kwargs={"processor_type": "json"}),
    "another mode": Refusal("FAILED_PRECONDITION", kwargs={"mode": SNAPSHOT}),
    "an unknown processor": Refusal("INVALID_ARGUMENT", kwargs={"processor_type": "nope"}),
    "a chunk over --max-chunk-bytes": Refusal(
        "RESOURCE_EXHAUSTED", chunk="é" * 9, limits=Limits(max_chunk_bytes=17)
    ),
    "a text over --max-text-bytes": Refusal(
        "RESOURCE_EXHAUSTED", chunk="x" * 6, limits=Limits(max_text_bytes=10)
    ),
    "memory over --max-memory-bytes": Refusal(
        "RESOURCE_EXHAUSTED", chunk="y" * 600_000, limits=Limits(max_memory_bytes=1 << 19)
    ),
    "a final response over --max-response-bytes": Refusal(
        "RESOURCE_EXHAUSTED", chunk="y" * 300, limits=Limits(max_response_bytes=500)
    ),
}

# Each is refused for a new id, while the open id is tracked.
NEW_ID_REFUSALS = {
    "an empty id": Refusal("INVALID_ARGUMENT", chunk_id=""),
    "an id over --max-id-bytes": Refusal("INVALID_ARGUMENT", chunk_id="é" * 129),
    "a new id past --max-ids": Refusal(
        "RESOURCE_EXHAUSTED", chunk_id="other", limits=Limits(max_ids=1)
    ),
    "a new id of a namespace past --tenant-max-ids": Refusal(
        "RESOURCE_EXHAUSTED", chunk_id="other", limits=Limits(max_ids=5, tenant_max_ids=1)
    ),
}


def _open(limits: Limits) -> Streams:
    parser = Streams(limits)
    first = parser.process("open", "hello", mode=APPEND, sequence=1)
    assert first.error is None
    return parser


def _assert_refused(result, refusal: Refusal, chunk_id: str, sequence: int) -> None:
    assert result.error is not None and result.error.status_hint == refusal.status
    assert (result.chunk_id, result.sequence) == (chunk_id, sequence)
    assert not result.final
    assert result.complete_text == "" and result.delta == "" and result.output is None
    assert not result.duplicate and not result.reset


def _assert_still_open(parser: Streams) -> None:
    info = parser.complete_text("open")
    assert (info.text, info.last_sequence) == ("hello", 1)
    done = parser.process("open", "!", final=True, sequence=2)
    assert done.error is None and done.final and not done.duplicate
    assert done.complete_text == "hello!"
    with pytest.raises(NotFound):
        parser.complete_text("open")


@pytest.mark.parametrize("sequence", [0, 2])
@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=list(REFUSALS))
def test_a_refused_final_leaves_its_id_open(refusal: Refusal, sequence: int) -> None:
    parser = _open(refusal.limits)
    memory = parser.store.memory
    result = parser.process("open", refusal.chunk, final=True, sequence=sequence, **refusal.kwargs)
    _assert_refused(result, refusal, "open", sequence)
    assert parser.store.memory == memory
    # The refused sequence was not applied, so it is not a duplicate when sent again.
    _assert_still_open(parser)


@pytest.mark.parametrize("refusal", NEW_ID_REFUSALS.values(), ids=list(NEW_ID_REFUSALS))
def test_a_refused_final_for_a_new_id_creates_nothing(refusal: Refusal) -> None:
    parser = _open(refusal.limits)
    namespace = "tenant" if refusal.limits.tenant_max_ids else ""
    if namespace:
        assert parser.process("first", "x", namespace=namespace).error is None
    counts = parser.store.counts()
    result = parser.process(refusal.chunk_id, "text", final=True, sequence=3, namespace=namespace)
    _assert_refused(result, refusal, refusal.chunk_id, 3)
    assert parser.store.counts() == counts
    if refusal.chunk_id == "other":
        with pytest.raises(NotFound):
            parser.complete_text("other", namespace=namespace)
    _assert_still_open(parser)


def test_a_refused_final_after_invalid_json_keeps_the_id_open() -> None:
    """Invalid JSON is applied, not refused; a refusal after it still finishes nothing."""
    parser = Streams()
    bad = parser.process("j", "{x", processor_type="json", sequence=1)
    assert bad.error is not None and bad.delta == "{x"
    refused = parser.process("j", "}", processor_type="text", final=True, sequence=2)
    assert refused.error.status_hint == "FAILED_PRECONDITION" and not refused.final
    assert parser.complete_text("j").text == "{x"
    done = parser.process("j", "}", final=True, sequence=2)
    # The text stopped being JSON at sequence 1: tracked since with no output and no error.
    assert done.final and done.complete_text == "{x}"
    assert done.error is None and done.output is None


def test_a_json_final_refused_for_its_size_leaves_the_reader_where_it_was() -> None:
    """The refused final was already read by the id's JSON reader: the id must go on from
    the text before it, so the ops of the answers that were given still rebuild the value."""
    parser = Streams(Limits(max_response_bytes=4000))
    first = parser.process("j", '{"a": "' + "x" * 500, processor_type="json", mode=APPEND)
    refused = parser.process("j", "y" * 2000 + '", "b": [1, 2]}', final=True)
    assert refused.error.status_hint == "RESOURCE_EXHAUSTED" and not refused.final
    more = parser.process("j", 'z", "b": [')
    done = parser.process("j", "3]}", final=True)
    assert more.error is None and done.error is None and done.final
    ops = first.output.deltas + more.output.deltas + done.output.deltas
    text = '{"a": "' + "x" * 500 + 'z", "b": [3]}'
    assert done.complete_text == text
    assert apply_ops(ops) == loads_exact(text)
    assert json.loads(done.output.value_json) == json.loads(text)


def test_a_json_final_refused_for_its_size_after_invalid_json_stays_without_output() -> None:
    parser = Streams(Limits(max_response_bytes=4000))
    bad = parser.process("j", "[1 2", processor_type="json", mode=APPEND)
    assert bad.error.status_hint == "INVALID_ARGUMENT"
    refused = parser.process("j", "]" * 2000, final=True)
    assert refused.error.status_hint == "RESOURCE_EXHAUSTED" and not refused.final
    done = parser.process("j", "]", final=True)
    assert done.final and done.error is None and done.output is None
    assert done.complete_text == "[1 2]"


def test_a_changed_processor_or_mode_is_named_in_the_refusal() -> None:
    """The message names what the id uses and what the request asked for: the processor when
    that differs, else the mode, even when the request repeats the id's own processor."""
    parser = Streams()
    parser.process("id", "[", processor_type="json", mode=APPEND)
    messages = {
        "processor": parser.process("id", "1", processor_type="plan").error.message,
        "both": parser.process("id", "1", processor_type="plan", mode=SNAPSHOT).error.message,
        "mode": parser.process("id", "1", processor_type="json", mode=SNAPSHOT).error.message,
        "mode only": parser.process("id", "1", mode=SNAPSHOT).error.message,
    }
    advice = "; clear it or use another id"
    processor = "chunk id uses processor 'json', not 'plan'" + advice
    mode = "chunk id uses mode APPEND, not SNAPSHOT" + advice
    assert messages == {"processor": processor, "both": processor, "mode": mode, "mode only": mode}


@pytest.mark.parametrize("mode", [1, APPEND, SNAPSHOT])
def test_a_text_over_its_limit_is_refused_naming_both_sizes(mode: int) -> None:
    parser = Streams(Limits(max_text_bytes=10))
    parser.process("id", "abcdé", mode=mode)  # 6 bytes
    chunk = "abcdé" + "fghij" if mode == SNAPSHOT else "fghij"
    refused = parser.process("id", chunk)
    assert refused.error.message == "text would be 11 bytes, over the limit of 10 bytes"
    assert parser.complete_text("id").text == "abcdé"


def test_a_plan_final_refused_for_its_size_goes_on_under_its_own_id() -> None:
    parser = Streams(Limits(max_response_bytes=4000))
    parser.process("p", '{"plan_markdown": "ab', processor_type="plan", mode=APPEND)
    refused = parser.process("p", "c" * 2000 + '"}', final=True)
    assert refused.error.status_hint == "RESOURCE_EXHAUSTED" and not refused.final
    done = parser.process("p", 'd"}', final=True)
    assert done.error is None and done.final
    assert (done.output.id, done.output.message_chunk, done.output.message) == ("p", "d", "abd")
