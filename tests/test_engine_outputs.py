"""How recent responses are kept for duplicates: encoded, in flat (sequence, bytes) tuples
that the garbage collector stops tracking after one collection, so that thousands of kept
responses on a busy server add nothing to its collections."""

from __future__ import annotations

import gc

from server.engine import Mode
from server.streams import Streams


def test_kept_responses_leave_the_collectors_view() -> None:
    streams = Streams()
    for sequence, chunk in enumerate(['{"a": ["x', 'y", 1, {"b": ', "true}]}"], start=1):
        result = streams.process(
            "id", chunk, processor_type="json", mode=Mode.APPEND, sequence=sequence
        )
        assert result is not None and result.output is not None
    state = streams.store.live(("", "id"))
    assert state is not None and [entry[0] for entry in state.recent] == [1, 2, 3]
    assert all(type(entry[1]) is bytes for entry in state.recent)
    gc.collect()
    assert not any(gc.is_tracked(entry) for entry in state.recent)
