"""The response size: "a final whose response would not fit is refused ... before the id
is finished". It is computed without encoding the response, and must be exactly the bytes
the response takes, whatever its text (ASCII or not), error and output: below them, a
response over the limit is sent; above them, one within it is refused."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_server_wire import repeated, results

from server import _wire
from server.engine import ChunkResult, InvalidArgument, StreamingParser
from server.engine._results import response_size


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
    parser = StreamingParser()
    parser.process("plain", "x" * 100_000, mode=2)
    plain = parser.store.memory
    parser.clear("plain")
    parser.process("kept", "x" * 100_000, mode=2, sequence=1)
    assert parser.store.memory >= plain + 100_000
