"""MemoryStore bookkeeping seen from outside: whatever gives way or goes, the memory charged
returns to exactly nothing once every id is forgotten."""

from __future__ import annotations

import pytest

from server.engine import InvalidArgument, Limits, Mode, ResourceExhausted
from server.engine._tracker import Tracker
from server.streams import Streams

APPEND = Mode.APPEND


def record_reservations(store) -> list[int]:
    """The amounts `store.reserve` is asked for from now on, in order, as it goes on."""
    reserved: list[int] = []
    reserve = store.reserve

    def recording(key, state, amount: int) -> None:
        reserved.append(amount)
        reserve(key, state, amount)

    store.reserve = recording
    return reserved


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


def _reserving(store, name: str):
    key = ("", name)
    return key, store.open(key, 0, 0.0)


def test_a_reservation_that_exactly_fills_the_budget_is_held_and_one_byte_more_refused() -> None:
    """--max-memory-bytes: what is held and reserved never passes the budget, and reaches
    it exactly. Chunks in flight count: a second reservation is refused when the two
    together would pass it."""
    budget = 1 << 20
    store = Streams(Limits(max_memory_bytes=budget)).store
    first_key, first = _reserving(store, "first")
    store.reserve(first_key, first, budget // 4)
    key, state = _reserving(store, "second")
    try:
        store.reserve(key, state, budget - budget // 4 + 1)
    except ResourceExhausted as refusal:
        assert "--max-memory-bytes" in refusal.message
    else:
        raise AssertionError("a reservation past the budget was held")
    third_key, third = _reserving(store, "third")
    store.reserve(third_key, third, budget - budget // 4)
    held = ((first_key, first, budget // 4), (third_key, third, budget - budget // 4))
    for key, state, amount in held:
        store.discard(key, state)  # nothing applied: only the reservation goes back
        store.settle(state, amount)
    assert store.memory == 0 and store.counts() == {}


def test_kept_finals_give_way_oldest_first_and_no_more_than_the_chunk_needs() -> None:
    budget = 4 << 20
    streams = Streams(Limits(max_memory_bytes=budget), clock=lambda: 0.0)
    for n in range(3):
        streams.process(f"done-{n}", "p" * 300_000, mode=APPEND, sequence=1)
        assert streams.process(f"done-{n}", "!", sequence=2, final=True).final
    store = streams.store
    kept = dict(store._final_results)
    assert len(kept) == 3
    oldest = next(iter(kept))
    # Exactly what dropping the oldest kept final makes room for.
    amount = budget - store.memory + kept[oldest]
    key, state = _reserving(store, "new")
    store.reserve(key, state, amount)
    assert list(store._final_results) == list(kept)[1:]
    store.discard(key, state)
    store.settle(state, amount)
    assert store.counts() == store.recount()


def test_a_kept_response_may_take_exactly_its_limit_and_the_kept_total_stays_exact() -> None:
    """Duplicates "carry the same delta and output as the first time when the server still
    knows them": it keeps the last RECENT_RESPONSES responses of an id, each of at most
    RECENT_RESPONSE_BYTES as held, and charges exactly what those hold."""
    from server.store import KEPT_OVERHEAD, RECENT_RESPONSE_BYTES, RECENT_RESPONSES, kept_bytes

    store = Streams().store
    _, state = _reserving(store, "id")
    state.remember(1, b"x" * (RECENT_RESPONSE_BYTES - KEPT_OVERHEAD))
    state.remember(2, b"y" * (RECENT_RESPONSE_BYTES - KEPT_OVERHEAD + 1))
    assert state.recall(1) is not None and state.recall(2) is None
    for sequence in range(3, 3 + 2 * RECENT_RESPONSES):
        state.remember(sequence, b"z" * (sequence * 7))
        assert state.recent_bytes == sum(kept_bytes(response) for _, response in state.recent)
    assert len(state.recent) == RECENT_RESPONSES
    assert state.recall(2 + 2 * RECENT_RESPONSES) == b"z" * ((2 + 2 * RECENT_RESPONSES) * 7)


def test_an_unnumbered_final_is_not_kept_though_its_id_was_numbered() -> None:
    """Only a numbered final can have duplicates: an unnumbered one (sequence 0) ending an
    id whose earlier chunks were numbered leaves only the id's last sequence behind."""
    from server.store import FINISHED_COST

    streams = Streams()
    streams.process("id", "ab", mode=APPEND, sequence=1)
    assert streams.process("id", "cd", final=True).final
    assert streams.store.memory == FINISHED_COST
    assert streams.process("id", "x", sequence=1).duplicate


@pytest.mark.parametrize(
    ("limits", "other_namespace"),
    [
        # The global budget binds: the other chunk is of another namespace.
        ({"max_memory_bytes": 1 << 20}, "b"),
        # The namespace's budget binds: the other chunk is of the same namespace.
        ({"max_memory_bytes": 2 << 20, "tenant_max_memory_bytes": 1 << 20}, ""),
    ],
)
def test_a_final_is_kept_exactly_when_the_memory_left_holds_it_and_its_record(
    limits: dict[str, int], other_namespace: str
) -> None:
    """Kept finals are a cache within --max-memory-bytes: a final is kept only when the
    memory left once its id is finished (the budget, less what is charged and what chunks
    in flight reserve, its own included) holds its response and its id's record."""
    from server.store import FINISHED_COST, kept_bytes

    budget = 1 << 20  # the binding one
    held: list[int] = []

    def finish(in_flight: int) -> tuple[bool, int, int]:
        """(kept, the kept size, the final's own reservation), with `in_flight` bytes
        reserved by another chunk while the final is applied, and another id holding
        `held[0]` bytes."""
        streams = Streams(Limits(**limits), clock=lambda: 0.0)
        store = streams.store
        streams.process("held", "z" * 100_000, mode=APPEND, namespace=other_namespace)
        held[:] = [store.memory]
        streams.process("id", "ab" * 50, mode=APPEND, sequence=1)
        key = (other_namespace, "other")
        other = store.open(key, 0, 0.0)
        store.reserve(key, other, in_flight)
        reserved = record_reservations(store)
        answer = streams.answer("id", "y" * 40_000, sequence=2, final=True)
        assert answer is not None and answer.result.final and answer.result.error is None
        kept = kept_bytes(answer.response) + len(b"H\x01")
        return bool(store._final_results), kept, reserved[0]

    kept, size, own = finish(0)
    assert kept and held[0] > 100_000
    threshold = budget - held[0] - own - size - FINISHED_COST
    assert finish(threshold)[0]
    assert not finish(threshold + 1)[0]


def test_kept_finals_stay_within_their_cache_oldest_given_way_first() -> None:
    from server.store import FINAL_CACHE_BYTES

    streams = Streams(clock=lambda: 0.0)
    store = streams.store
    count = 0
    while store._final_bytes <= FINAL_CACHE_BYTES - (1 << 20):
        streams.process(f"id-{count}", "x" * (1 << 20), mode=APPEND, sequence=1)
        assert streams.process(f"id-{count}", "", sequence=2, final=True).final
        count += 1
    kept_before = list(store._final_results)
    assert kept_before[0] == ("", "id-0")
    for more in range(count, count + 3):
        streams.process(f"id-{more}", "x" * (1 << 20), mode=APPEND, sequence=1)
        streams.process(f"id-{more}", "", sequence=2, final=True)
        assert store._final_bytes <= FINAL_CACHE_BYTES
    kept = list(store._final_results)
    assert kept[-1] == ("", f"id-{count + 2}") and ("", "id-0") not in kept
    assert kept == sorted(kept, key=lambda key: int(key[1].split("-")[1]))
    assert store.counts() == store.recount()


def test_kept_finals_may_fill_their_cache_exactly() -> None:
    """The cache holds FINAL_CACHE_BYTES in all: a final that brings it to exactly that
    drops none of the others."""
    from server.store import FINAL_CACHE_BYTES

    def finish(streams: Streams, chunk_id: str, length: int) -> int:
        """The kept size of `chunk_id`'s final, of a text of `length` characters."""
        pieces = [min(1 << 20, length - start) for start in range(0, length, 1 << 20)]
        for number, piece in enumerate(pieces, 1):
            assert (
                streams.process(chunk_id, "x" * piece, mode=APPEND, sequence=number).error is None
            )
        assert streams.process(chunk_id, "", sequence=len(pieces) + 1, final=True).final
        return streams.store._final_results[("", chunk_id)]

    streams = Streams(clock=lambda: 0.0)
    count = 0
    while streams.store._final_bytes + (2 << 20) <= FINAL_CACHE_BYTES:
        finish(streams, f"id-{count:03}", 1 << 20)
        count += 1
    gap = FINAL_CACHE_BYTES - streams.store._final_bytes
    length = gap - 1000
    for _ in range(3):  # the size is its text's length plus a few bytes of framing
        probe = finish(Streams(clock=lambda: 0.0), "last", length)
        if probe == gap:
            break
        length += gap - probe
    assert probe == gap
    kept_before = list(streams.store._final_results)
    finish(streams, "last", length)
    assert streams.store._final_bytes == FINAL_CACHE_BYTES
    assert list(streams.store._final_results) == [*kept_before, ("", "last")]


def test_a_refusal_names_what_it_is_about() -> None:
    """An error's subject, which the server sends as its details (the id not found, the
    limit a chunk would pass), names the id or the flag the message names."""
    from server.engine import NotFound

    streams = Streams(Limits(max_memory_bytes=1 << 20))
    with pytest.raises(NotFound) as not_found:
        streams.complete_text("never-sent")
    assert not_found.value.subject == "never-sent"
    refused = streams.process("big", "x" * (1 << 20), mode=APPEND).error
    assert isinstance(refused, ResourceExhausted) and refused.subject == "--max-memory-bytes"
    assert "--max-memory-bytes" in refused.message

    tenants = Streams(Limits(max_memory_bytes=8 << 20, tenant_max_memory_bytes=1 << 20))
    refused = tenants.process("big", "x" * (1 << 20), mode=APPEND, namespace="a").error
    assert isinstance(refused, ResourceExhausted)
    assert refused.subject == "--tenant-max-memory-bytes" and refused.subject in refused.message

    for mode in (APPEND, Mode.SNAPSHOT, Mode.AUTO):
        too_long = Streams(Limits(max_text_bytes=10)).process("id", "x" * 11, mode=mode).error
        assert isinstance(too_long, ResourceExhausted) and too_long.subject == "--max-text-bytes"


def test_ids_are_refused_at_their_limit_naming_it() -> None:
    """--max-ids counts live ids in all; --tenant-max-ids those of one namespace."""
    streams = Streams(Limits(max_ids=3))
    for n in range(3):
        assert streams.process(f"id-{n}", "x").error is None
    refused = streams.process("one-more", "x").error
    assert isinstance(refused, ResourceExhausted) and refused.subject == "--max-ids"
    assert refused.message.startswith("3 ids are tracked, the limit (--max-ids)")

    tenants = Streams(Limits(max_ids=10, tenant_max_ids=2))
    for n in range(2):
        assert tenants.process(f"id-{n}", "x", namespace="a").error is None
    refused = tenants.process("one-more", "x", namespace="a").error
    assert isinstance(refused, ResourceExhausted) and refused.subject == "--tenant-max-ids"
    assert refused.message == (
        "2 ids of this namespace are tracked, the limit (--tenant-max-ids); "
        "finish or clear some first"
    )
    assert tenants.process("one-more", "x", namespace="b").error is None


@pytest.mark.parametrize("budget", ["global", "tenant"])
def test_reservations_may_fill_a_budget_exactly_and_no_more(budget: str) -> None:
    """Chunks in flight reserve their worst case: the global budget (over three namespaces
    here), or a namespace's, may be reserved to its last byte, and a byte more is refused,
    naming the budget."""
    from server.store import MemoryStore

    if budget == "global":
        store = MemoryStore(Limits(max_memory_bytes=1000))
        keys = [("a", "a"), ("b", "b"), ("c", "c")]
    else:
        store = MemoryStore(Limits(max_memory_bytes=10_000, tenant_max_memory_bytes=1000))
        keys = [("t", "a"), ("t", "b"), ("t", "c")]
    states = [store.open(key, 0, 0.0) for key in keys]
    store.reserve(keys[0], states[0], 400)
    store.reserve(keys[1], states[1], 600)
    with pytest.raises(ResourceExhausted) as refused:
        store.reserve(keys[2], states[2], 1)
    flag = "--max-memory-bytes" if budget == "global" else "--tenant-max-memory-bytes"
    assert refused.value.subject == flag
    assert refused.value.message.startswith(f"memory for ids would pass {flag} (1000 bytes)")
    assert (
        "0 held, 1000 reserved by chunks in flight, this chunk may need 1;" in refused.value.message
    )
    assert store.live(keys[2]) is None, "a refused first request leaves no id behind"
    assert not states[2].alive, "whoever waits on it looks the id up again"
    store.discard(keys[0], states[0])
    store.settle(states[0], 400)
    store.reserve(keys[2], store.open(keys[2], 0, 0.0), 400)


def test_a_chunk_reserves_what_docs_limits_md_says() -> None:
    """Before a chunk is applied its id reserves its session's growth bound (a new id also
    what it holds from the start), plus, when numbered, room for the response kept for its
    duplicates: 128 B + --max-id-bytes + 4 bytes a character for a `text` chunk, 256 KiB
    for a chunk with output."""
    streams = Streams(Limits(max_id_bytes=300))
    store = streams.store
    reserved = record_reservations(store)

    def reserved_for(chunk_id: str, chunk: str, **options) -> int:
        reserved.clear()
        assert streams.process(chunk_id, chunk, **options).error is None
        return reserved[0]

    text = "héllo wörld"
    first = reserved_for("t", text, mode=APPEND)
    state = store.live(("", "t"))
    from server.store import ID_COST

    assert first == Tracker(APPEND).growth_bound(text) + ID_COST + Tracker(APPEND).held_bytes
    bound = state.session.growth_bound(text)
    assert reserved_for("t", text) == bound
    bound = state.session.growth_bound(text)
    assert reserved_for("t", text, sequence=1) == bound + 128 + 300 + 4 * len(text)
    reserved_for("j", "[", processor_type="json", mode=APPEND)
    session = store.live(("", "j")).session
    assert reserved_for("j", "1,", sequence=1) == session.growth_bound("1,") + 256 * 1024


def test_an_id_busy_elsewhere_is_left_alone_when_told_not_to_wait() -> None:
    streams = Streams()
    assert streams.process("busy", "a").error is None
    state = streams.store.live(("", "busy"))
    with state.lock:
        assert streams.process("busy", "b", wait=False) is None
    assert streams.complete_text("busy").text == "a"
    assert streams.process("busy", "b", wait=False).delta == "b"


def test_an_empty_id_is_refused_naming_the_field() -> None:
    error = Streams().process("", "x").error
    assert isinstance(error, InvalidArgument)
    assert (error.message, error.subject) == ("chunk_id is empty", "chunk_id")


def test_a_request_out_of_bounds_is_refused_naming_the_field_or_flag() -> None:
    streams = Streams(Limits(max_id_bytes=8, max_chunk_bytes=10))
    long_id = streams.process("é" * 5, "x").error
    assert isinstance(long_id, InvalidArgument) and long_id.subject == "chunk_id"
    assert long_id.message == "chunk_id is 10 bytes, over the limit of 8 bytes"
    long_chunk = streams.process("id", "é" * 6).error
    assert isinstance(long_chunk, ResourceExhausted)
    assert long_chunk.subject == "--max-chunk-bytes"
    assert long_chunk.message.startswith("chunk is 12 bytes, over the limit of 10 bytes")
    unknown = streams.process("id", "x", processor_type="nope").error
    assert isinstance(unknown, InvalidArgument) and unknown.subject == "processor_type"
    assert unknown.message == (
        "unknown processor 'nope'; known: dashboard, json, metric, plan, search_data_catalog, text"
    )


def test_streams_keep_ids_in_the_store_they_are_given() -> None:
    from server.store import MemoryStore

    store = MemoryStore(Limits())
    streams = Streams(store=store)
    assert streams.store is store
    streams.process("id", "x")
    assert store.live(("", "id")) is not None
