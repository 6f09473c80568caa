"""The response size: "a final whose response would not fit is refused ... before the id
is finished". It is computed without encoding the response, and must be exactly the bytes
the response takes, whatever its text (ASCII or not), error and output: below them, a
response over the limit is sent; above them, one within it is refused."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_server_wire import repeated, results

from server import _wire
from server._wire import response_size
from server.engine import ChunkResult, InvalidArgument, Limits, Mode, ResourceExhausted
from server.streams import Streams

APPEND = Mode.APPEND


@settings(max_examples=300)
@given(results)
def test_the_size_is_the_encoded_size(result: ChunkResult) -> None:
    assert response_size(result) == len(_wire.chunk_response(result))


@given(st.text(min_size=1, max_size=50) | repeated, st.integers(0, 2**64 - 1))
def test_each_part_of_a_bare_answer_is_counted(text: str, sequence: int) -> None:
    # One field of each kind at a time: a part left out of the bound shows on its own.
    for result in (
        ChunkResult(text, sequence, final=True, reset=True, duplicate=True),
        ChunkResult("i", sequence, delta=text),
        ChunkResult("i", 1, error=InvalidArgument(text)),
        ChunkResult("i", 1, final=True, complete_text=text),
    ):
        assert response_size(result) == len(_wire.chunk_response(result))


def test_a_numbered_answer_kept_for_duplicates_is_charged() -> None:
    """The text and the kept copy of its answer are both held: both are charged."""
    parser = Streams()
    parser.process("plain", "x" * 100_000, mode=Mode.APPEND)
    plain = parser.store.memory
    parser.clear("plain")
    parser.process("kept", "x" * 100_000, mode=Mode.APPEND, sequence=1)
    assert parser.store.memory >= plain + 100_000


def _finish(parser: Streams, processor: str, text: str) -> tuple[int, ChunkResult]:
    """The size of the answer to the text, then the answer to a final empty chunk."""
    first = parser.process("id", text, processor_type=processor, mode=APPEND)
    answer = parser.process("id", "", processor_type=processor, mode=APPEND, final=True)
    assert first is not None and answer is not None
    return len(_wire.chunk_response(first)), answer


@settings(max_examples=50)
@given(
    st.sampled_from(["text", "json", "plan"]),
    st.text(alphabet='{}[]":,ab1 é😀', max_size=60),
)
def test_a_final_exactly_at_the_response_limit_is_answered_and_one_byte_more_refused(
    processor: str, text: str
) -> None:
    """--max-response-bytes: "No response is bigger": a final whose response takes exactly
    the limit is answered; with the limit one byte lower it is refused, and the id stays
    open with its text."""
    first, final = _finish(Streams(), processor, text)
    size = len(_wire.chunk_response(final))
    assume(first < size)  # else the first answer is the one over the limit

    tight = Streams(Limits(max_response_bytes=size - 1))
    refused = _finish(tight, processor, text)[1]
    assert isinstance(refused.error, ResourceExhausted) and not refused.final
    assert tight.complete_text("id").text == text

    answered = _finish(Streams(Limits(max_response_bytes=size)), processor, text)[1]
    assert answered.final and not isinstance(answered.error, ResourceExhausted)
    assert len(_wire.chunk_response(answered)) == size


def test_a_plugin_output_counts_as_an_empty_output() -> None:
    """A plugin's own output type is not measured: it counts as an output with nothing in
    it, the size of an empty ReasoningText."""
    from server.engine import ReasoningText

    class PluginOutput:
        pass

    empty = ReasoningText("", "", "", "", "", "")
    for final in (False, True):
        plugin = ChunkResult("i", 1, "d", PluginOutput(), final=final, complete_text="d")
        builtin = ChunkResult("i", 1, "d", empty, final=final, complete_text="d")
        assert response_size(plugin) == response_size(builtin) == len(_wire.chunk_response(builtin))


@given(
    st.text(min_size=1, max_size=20),
    st.lists(st.tuples(st.text(max_size=200), st.integers(0, 2**64 - 1)), max_size=6),
    st.sampled_from(list(Mode)),
)
def test_a_text_response_is_at_most_its_chunk_its_id_and_64_bytes(
    chunk_id: str, chunks: list[tuple[str, int]], mode: Mode
) -> None:
    """docs/limits.md's bound for `text`, which --max-response-bytes must hold (its
    responses are never measured): duplicates and resets included."""
    streams = Streams()
    for chunk, sequence in chunks:
        for _ in range(2):  # the second time, a duplicate when numbered
            answer = streams.answer(chunk_id, chunk, mode=mode, sequence=sequence)
            assert answer is not None and answer.result.error is None
            bound = len(chunk.encode()) + len(chunk_id.encode()) + 64
            assert len(answer.response) <= bound
