"""Session, one id's state machine, driven directly: no store, no threads, no wire. Each
rule of its docstring, and what a refused final leaves behind."""

from __future__ import annotations

import pytest
from helpers import chunkings_of
from hypothesis import given
from hypothesis import strategies as st

from server._wire import response_size
from server.engine import (
    BUILTIN_PROCESSORS,
    FailedPrecondition,
    InvalidArgument,
    Limits,
    Mode,
    ProcessorFailed,
    ReasoningText,
    ResourceExhausted,
    Session,
)
from server.engine._tracker import Tracker


def session(processor: str = "text", mode: Mode = Mode.APPEND, **limits: int) -> Session:
    return Session(
        "id",
        processor_type=processor,
        factory=BUILTIN_PROCESSORS[processor],
        mode=mode,
        limits=Limits(**limits),
        response_size=response_size,
    )


def plugin_session(factory) -> Session:
    """A session of a plugin's processor, made by `factory`, with the default limits."""
    return Session(
        "id",
        processor_type="plugin",
        factory=factory,
        mode=Mode.APPEND,
        limits=Limits(),
        response_size=response_size,
    )


def test_another_processor_or_mode_is_refused_and_none_means_its_own() -> None:
    s = session("json")
    s.check("", None)
    s.check("json", Mode.APPEND)
    with pytest.raises(FailedPrecondition, match="uses processor 'json', not 'plan'"):
        s.check("plan", None)
    with pytest.raises(FailedPrecondition, match="uses mode APPEND, not SNAPSHOT"):
        s.check("", Mode.SNAPSHOT)


@given(st.lists(st.integers(1, 50), max_size=20))
def test_a_number_at_or_below_the_last_applied_is_a_duplicate(numbers: list[int]) -> None:
    s = session()
    last = 0
    for number in numbers:
        assert s.is_duplicate(number) == (number <= last)
        assert not s.is_duplicate(0)
        if not s.is_duplicate(number):
            s.feed("x", sequence=number)
            last = number
        assert s.last_sequence == last


def test_a_final_finishes_the_session_and_carries_the_whole_text() -> None:
    s = session()
    assert not s.feed("ab").final and not s.finished
    final = s.feed("c", final=True, sequence=4)
    assert (final.final, final.complete_text, final.delta, final.sequence) == (True, "abc", "c", 4)
    assert s.finished and s.last_sequence == 4


def test_text_over_the_limit_is_refused_and_changes_nothing() -> None:
    s = session(max_text_bytes=4)
    s.feed("abc", sequence=1)
    with pytest.raises(ResourceExhausted):
        s.feed("de", sequence=2)
    assert (s.text, s.last_sequence) == ("abc", 1)


@given(st.text(alphabet='ab "{}:', max_size=30).flatmap(chunkings_of))
def test_text_the_processor_cannot_read_is_reported_beside_its_delta(chunks: list[str]) -> None:
    s = session("json")
    text = "".join(chunks)
    failed_at = None
    for n, chunk in enumerate(chunks):
        result = s.feed(chunk)
        assert result.delta == chunk  # APPEND: tracked whatever the processor says
        if result.error is not None:
            assert isinstance(result.error, InvalidArgument) and failed_at is None
            failed_at = n
        elif failed_at is not None:
            assert result.output is None  # stopped: nothing more, no more errors
    assert s.text == text
    assert s.failed == (failed_at is not None)
    assert (s.processor is None) == s.failed


class ReadsFiveAtATime:
    """A plugin that reads any text in pieces of at most five characters, and refuses more
    at once: read again in one go, what it read piecewise is text it cannot read."""

    def __init__(self, chunk_id: str, *, max_json_depth: int) -> None:
        self.seen = ""

    def process(self, new_text, *, final, complete_text):
        if len(new_text) > 5:
            raise InvalidArgument("more than five characters at once")
        self.seen += new_text
        return ReasoningText("id", "t", "", new_text, self.seen, "completed" if final else "")


def test_a_refused_final_rebuilds_the_processor_from_the_text_and_keeps_what_it_says() -> None:
    """A final too big to send is refused having changed nothing: the text is put back
    and the processor, which read the final, is made again from the text. A processor
    that cannot read the text again stops, as for any text it cannot read."""
    s = Session(
        "id",
        processor_type="five",
        factory=ReadsFiveAtATime,
        mode=Mode.APPEND,
        limits=Limits(max_response_bytes=60),
        response_size=response_size,
    )
    s.feed("abc")
    s.feed("def")
    with pytest.raises(ResourceExhausted, match="--max-response-bytes"):
        s.feed("g" * 5, final=True)
    assert s.text == "abcdef" and not s.finished
    assert s.failed and s.processor is None  # "abcdef" at once is more than five
    assert s.feed("h").output is None


def test_a_refused_final_leaves_a_processor_that_goes_on_as_before() -> None:
    s = session("plan", max_response_bytes=400)
    s.feed('{"plan_markdown": "ab')
    with pytest.raises(ResourceExhausted) as refused:
        s.feed("c" * 500, final=True)
    assert refused.value.subject == "--max-response-bytes"
    assert refused.value.message.endswith(
        "bytes, over the limit of 400 bytes (--max-response-bytes); "
        "nothing changed: read the text with GetCompleteText, then clear the id"
    )
    assert not s.failed and s.text == '{"plan_markdown": "ab'
    result = s.feed("cd")
    assert isinstance(result.output, ReasoningText) and result.output.message_chunk == "cd"


class _Silent:
    """A plugin's processor with neither `held_bytes` nor `growth_bound`."""

    def __init__(self, chunk_id: str, *, max_json_depth: int) -> None:
        pass

    def process(self, new_text, *, final, complete_text):
        return None


class _Bounded(_Silent):
    held_bytes = 0

    def growth_bound(self, chunk: str) -> int:
        return 7 * len(chunk) + 3


@pytest.mark.parametrize("chunk", ["", "x", "é" * 40, "😀" * 1000])
def test_a_chunk_reserves_the_texts_bound_plus_what_its_processor_may_grow_by(chunk: str) -> None:
    """docs/limits.md: a processor is taken at its own growth_bound; a plugin without one at
    256 bytes a character plus 2.06 MiB; a processor that shows nothing at nothing more."""
    text_only = Tracker(Mode.APPEND).growth_bound(chunk)
    assert session("text").growth_bound(chunk) == text_only
    assert plugin_session(_Bounded).growth_bound(chunk) == text_only + 7 * len(chunk) + 3
    unbounded = plugin_session(_Silent)
    assert unbounded.growth_bound(chunk) == text_only + 256 * len(chunk) + (2 << 20) + (64 << 10)
    assert unbounded.held_bytes == Tracker(Mode.APPEND).held_bytes


def test_an_unnumbered_chunk_leaves_the_last_number_alone() -> None:
    s = session()
    assert s.feed("a").sequence == 0 and s.last_sequence == 0
    s.feed("b", sequence=4)
    assert s.feed("c").sequence == 0 and s.last_sequence == 4


class _Broken:
    """A plugin's processor with a bug: it raises on its second call."""

    def __init__(self, chunk_id: str, *, max_json_depth: int) -> None:
        self.calls = 0

    def process(self, new_text, *, final, complete_text):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("bug")
        return ReasoningText("id", "t", "", f"call {self.calls}", "", "loading")


def test_a_processor_with_a_bug_stops_for_its_id_and_the_text_goes_on() -> None:
    s = plugin_session(_Broken)
    assert s.feed("a").output is not None
    broken = s.feed("b")
    assert isinstance(broken.error, ProcessorFailed) and broken.output is None
    assert broken.delta == "b" and s.failed and s.processor is None
    assert broken.error.message == (
        "the id's processor failed; the server log has the details. "
        "The text is tracked; the processor shows nothing more for this id"
    )
    assert isinstance(broken.error.__cause__, RuntimeError)
    assert broken.error.subject == "", "it is about nothing the request named"
    after = s.feed("c", final=True)
    assert (after.output, after.error, after.complete_text) == (None, None, "abc")


def _measured(processor: str) -> Session:
    """A session whose responses all measure a gigabyte, and which measures those of
    chunks over 10 characters with output: each is then over its limit."""
    limits = Limits()
    spare = 64 * 10 + (2 << 20) + (8 << 10)  # RESPONSE_BASE, and 64 B a character
    return Session(
        "id",
        processor_type=processor,
        factory=BUILTIN_PROCESSORS[processor],
        mode=Mode.APPEND,
        limits=Limits(max_response_bytes=limits.max_text_bytes + spare),
        response_size=lambda result: 1 << 30,
    )


def test_a_chunk_with_output_past_the_bound_is_measured_and_its_processor_stops() -> None:
    s = _measured("plan")
    short = s.feed('{"plan_markdown": "')  # 19 characters, no output yet
    assert short.output is None and short.error is None
    assert s.feed("0123456789").output is not None  # not over 10: not measured
    long = s.feed("0123456789a")
    assert long.output is None and isinstance(long.error, InvalidArgument)
    assert long.error.message.startswith(f"this chunk's output would be {1 << 30} bytes")
    assert long.error.message.endswith("(--max-response-bytes); no more output for this id")
    assert long.delta == "0123456789a" and s.failed


def test_an_output_exactly_at_the_limit_is_sent() -> None:
    s = _measured("plan")
    s._response_size = lambda result: s._limits.max_response_bytes
    s.feed('{"plan_markdown": "')
    result = s.feed("0123456789a")
    assert result.output is not None and result.error is None and not s.failed


def test_a_chunk_without_output_is_never_measured() -> None:
    """Its response is bounded by the chunk (docs/limits.md), which the server's flags keep
    under --max-response-bytes."""
    s = _measured("text")
    result = s.feed("x" * 100)
    assert (result.delta, result.error) == ("x" * 100, None) and not s.failed


def test_with_no_room_to_spare_every_chunk_with_output_is_measured() -> None:
    """A response limit below the text limit plus the base leaves nothing unmeasured: the
    one-character chunk that ends a long number is measured, and its output refused."""
    s = session("json", max_response_bytes=300)
    assert s.feed("[" + "1" * 250).error is None
    assert s.feed("1" * 250).error is None
    ended = s.feed(",")
    assert ended.output is None and isinstance(ended.error, InvalidArgument)
    assert "over the limit of 300 bytes" in ended.error.message


@pytest.mark.parametrize("chunk", ["", "abc", "XXXXabc", "\u0000"])
def test_the_first_chunk_is_new_in_full_in_every_mode(chunk: str) -> None:
    for mode in Mode:
        assert session(mode=mode).feed(chunk).delta == chunk
