"""Idle expiry: "an id that no ProcessChunks request has touched for the idle time is
forgotten as by ClearChunk; reads do not keep it alive", and a finished id's sequence is
remembered for the idle period. Checked against a model, with ids touched in any order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.engine import Limits, Mode, NotFound
from server.streams import Streams

TTL = 10
IDS = [f"id{i}" for i in range(6)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000

    def __call__(self) -> float:
        return self.now


def live(parser: Streams, chunk_id: str) -> bool:
    try:
        parser.complete_text(chunk_id)
    except NotFound:
        return False
    return True


step = st.one_of(
    st.tuples(st.just("touch"), st.sampled_from(IDS)),
    st.tuples(st.just("read"), st.sampled_from(IDS)),
    st.tuples(st.just("finish"), st.sampled_from(IDS)),
    # Whole seconds, so that some ids are exactly TTL old when the sweep runs.
    st.tuples(st.just("wait"), st.integers(0, TTL + 2)),
    st.tuples(st.just("expire")),
)


@settings(max_examples=300)
@given(st.lists(step, max_size=60))
def test_exactly_the_ids_idle_past_their_ttl_are_forgotten(steps) -> None:
    clock = FakeClock()
    parser = Streams(Limits(idle_ttl=TTL), clock=clock)
    touched: dict[str, int] = {}  # live id -> last request's time
    finished: dict[str, tuple[int, int]] = {}  # finished id -> (its final's time, sequence)
    sequence = 0
    for op in steps:
        if op[0] == "touch":
            assert parser.process(op[1], "x", mode=Mode.APPEND).error is None
            touched[op[1]] = clock.now
            finished.pop(op[1], None)  # a request with sequence 0 starts the id afresh
        elif op[0] == "read":
            # Reads must not count as a touch: the model does not change.
            assert live(parser, op[1]) == (op[1] in touched)
        elif op[0] == "finish":
            sequence += 1
            result = parser.process(op[1], "y", mode=Mode.APPEND, final=True, sequence=sequence)
            assert result.error is None and result.final
            touched.pop(op[1], None)
            finished[op[1]] = (clock.now, sequence)
        elif op[0] == "wait":
            clock.now += op[1]
        else:
            deadline = clock.now - TTL
            gone = {i for i, t in touched.items() if t <= deadline}
            gone_finished = {i for i, (t, _) in finished.items() if t <= deadline}
            assert parser.expire() == len(gone) + len(gone_finished)
            for chunk_id in gone:
                del touched[chunk_id]
            for chunk_id in gone_finished:
                del finished[chunk_id]
        for chunk_id in IDS:
            assert live(parser, chunk_id) == (chunk_id in touched), chunk_id
        assert parser.store.counts().get("*", (0, 0))[0] == len(touched) + len(finished)
    # A finished id still remembered answers a resend of its final as a duplicate.
    for chunk_id, (_, seq) in finished.items():
        assert parser.process(chunk_id, "y", mode=Mode.APPEND, final=True, sequence=seq).duplicate


def test_one_sweep_forgets_more_ids_than_a_batch() -> None:
    """expire() goes on batch after batch until nothing idle is left, however many."""
    clock = FakeClock()
    parser = Streams(Limits(idle_ttl=TTL), clock=clock)
    for i in range(2500):
        parser.process(f"live{i}", "x")
    for i in range(1500):
        parser.process(f"done{i}", "x", final=True, sequence=1)
    clock.now += TTL
    parser.process("fresh", "x")
    assert parser.expire() == 4000
    assert parser.store.counts()["*"][0] == 1
    assert live(parser, "fresh")
