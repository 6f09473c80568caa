"""How the engine keeps recent outputs for duplicates: frozen into flat exact tuples that
the garbage collector stops tracking, and thawed back equal to what was first sent."""

from __future__ import annotations

import gc

from hypothesis import given
from hypothesis import strategies as st

from server.engine import Mode
from server.engine._outputs import (
    Append,
    FileDelta,
    PartialJson,
    ReasoningFile,
    ReasoningText,
    Set,
    freeze,
    thaw,
)
from server.streams import Streams

APPEND = Mode.APPEND

text = st.text(max_size=20)
ops = st.lists(st.builds(Set, text, text) | st.builds(Append, text, text), max_size=5)
partial_json = st.builds(PartialJson, ops, text)
reasoning_text = st.builds(ReasoningText, text, text, text, text, text, text)
file_delta = st.builds(FileDelta, text, text, text, st.integers(0, 2**32 - 1), text, text, text)
reasoning_file = st.builds(ReasoningFile, text, text, text, text, st.lists(file_delta, max_size=3))
outputs = partial_json | reasoning_text | reasoning_file


@given(outputs)
def test_a_frozen_output_thaws_to_an_equal_one(output) -> None:
    thawed = thaw(freeze(output))
    assert thawed == output
    assert type(thawed) is type(output)
    if isinstance(output, PartialJson):
        # Set and Append are told apart by type, not by their fields.
        assert [type(op) for op in thawed.deltas] == [type(op) for op in output.deltas]


@given(outputs)
def test_a_frozen_output_is_untracked_after_one_collection(output) -> None:
    frozen = freeze(output)
    gc.collect()
    assert not gc.is_tracked(frozen)


def test_kept_outputs_leave_the_collectors_view() -> None:
    parser = Streams()
    for sequence, chunk in enumerate(['{"a": ["x', 'y", 1, {"b": ', "true}]}"], start=1):
        result = parser.process("id", chunk, processor_type="json", mode=APPEND, sequence=sequence)
        assert result.output is not None
    state = parser._store.live(("", "id"))
    assert state is not None and len(state.recent) == 3
    gc.collect()
    assert not any(gc.is_tracked(entry) for entry in state.recent)


def test_a_plugin_output_is_kept_as_it_is() -> None:
    class Custom:
        pass

    output = Custom()
    assert thaw(freeze(output)) is output
    assert thaw(freeze(None)) is None
