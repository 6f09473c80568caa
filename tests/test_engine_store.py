"""MemoryStore bookkeeping seen from outside: whatever gives way or goes, the memory charged
returns to exactly nothing once every id is forgotten."""

from __future__ import annotations

from server.engine import Limits, Mode
from server.streams import Streams

APPEND = Mode.APPEND


def assert_nothing_held(parser: Streams) -> None:
    store = parser.store
    assert store.memory == 0
    assert store.counts() == {} == store.recount()


def test_finals_that_gave_way_and_were_then_forgotten_leave_nothing_charged() -> None:
    parser = Streams(Limits(max_memory_bytes=4 << 20, idle_ttl=60), clock=lambda: 0.0)
    for n in range(30):
        parser.process(f"done-{n}", "p" * 200_000, mode=APPEND, sequence=1)
        assert parser.process(f"done-{n}", "!", sequence=2, final=True).final
    kept = len(parser.store._final_results)
    assert kept
    for n in range(6):  # new work makes the oldest kept finals give way
        assert parser.process(f"new-{n}", "n" * 200_000, mode=APPEND).error is None
    assert len(parser.store._final_results) < kept
    assert parser.store.counts() == parser.store.recount()
    for n in range(6):
        parser.clear(f"new-{n}")
    for n in range(0, 30, 2):
        parser.clear(f"done-{n}")
    parser._clock = lambda: 100.0  # the rest expire
    assert parser.expire() == 15
    assert_nothing_held(parser)


def test_usage_of_a_namespace_never_seen_is_nothing() -> None:
    parser = Streams()
    assert parser.store.usage("never-seen") == (0, 0)
    parser.process("id", "text", namespace="seen")
    ids, memory = parser.store.usage("seen")
    assert ids == 1 and memory > 0
    assert parser.store.usage("never-seen") == (0, 0)
    parser.clear("id", namespace="seen")
    assert parser.store.usage("seen") == (0, 0)


def test_a_first_request_refused_after_it_reached_the_tracker_charges_nothing() -> None:
    """The id was made for the request, then refused by the text or response limit: it
    goes, and nothing stays charged for it, even while another request waits on it."""
    parser = Streams(Limits(max_text_bytes=10, max_response_bytes=300))
    assert parser.process("long", "x" * 11).error.status_hint == "RESOURCE_EXHAUSTED"
    big = parser.process("big", "y" * 200, final=True)
    assert big.error.status_hint == "RESOURCE_EXHAUSTED" and not big.final
    assert_nothing_held(parser)
    # The names are free: a new request makes a new id.
    assert parser.process("long", "x" * 10).error is None
    assert parser.complete_text("long").text == "x" * 10
    parser.clear("long")
    assert_nothing_held(parser)


def test_memory_store_has_every_call_of_the_store_interface() -> None:
    """The interface a second store implements is the one Streams uses: MemoryStore has
    each of its calls, with the same parameters."""
    import inspect

    from server.store import MemoryStore, Store

    calls = [name for name in vars(Store) if not name.startswith("_")]
    assert {"open", "reserve", "settle", "finish", "expire", "memory"} <= set(calls)
    for name in calls:
        ours, theirs = getattr(MemoryStore, name), getattr(Store, name)
        if isinstance(theirs, property):
            assert isinstance(ours, property), name
            continue
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(theirs).parameters
        ), name
