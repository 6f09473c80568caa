"""The memory budget: what the store charges for ids, and the refusals it makes.

Invariants:
- the running counts (ids and memory, per namespace) always equal a recount from every
  id's state, after any sequence of requests, finals, duplicates, clears and expiry;
- the charged memory never passes --max-memory-bytes or a namespace's
  --tenant-max-memory-bytes; a chunk that could pass it is refused with RESOURCE_EXHAUSTED
  naming the limit, and changes nothing;
- ClearChunk, GetCompleteText and a final in flight on one id leave the store as some
  serial order of them would.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc

import pytest
from chunkwise.v1 import streaming_pb2 as pb
from grpc_server import TIMEOUT
from hypothesis import given, settings
from hypothesis import strategies as st

from server._wire import as_duplicate
from server.engine import Limits, Mode, NotFound
from server.store import FINISHED_COST, ID_COST
from server.streams import Streams

APPEND, SNAPSHOT, AUTO = Mode.APPEND, Mode.SNAPSHOT, Mode.AUTO
PROCESSORS = ["text", "json", "plan", "metric"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def assert_counts_exact(parser: Streams) -> None:
    store = parser.store
    counts = store.counts()
    assert counts == store.recount()
    assert store.memory == counts.get("*", (0, 0))[1]
    assert store.memory == sum(memory for name, (_, memory) in counts.items() if name != "*")


operation = st.one_of(
    st.tuples(
        st.just("chunk"),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["", "t1", "t2"]),
        st.sampled_from(['{"plan_markdown": "x', '", "files": [{"name": "n"}', "", "]}", "é😀"]),
        st.sampled_from(PROCESSORS),
        st.sampled_from([APPEND, SNAPSHOT, AUTO]),
        st.booleans(),
        st.integers(0, 6),
    ),
    st.tuples(st.just("clear"), st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "t1"])),
    st.tuples(st.just("wait"), st.integers(0, 30)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=40), st.integers(1, 4))
def test_running_counts_equal_a_recount_after_any_operations(operations, max_ids) -> None:
    clock = FakeClock()
    parser = Streams(Limits(max_ids=max_ids, idle_ttl=20), clock=clock)
    for op in operations:
        if op[0] == "chunk":
            _, chunk_id, namespace, chunk, processor, mode, final, sequence = op
            # A str of its own, as each request brings: a str two ids held would grow in
            # one id's count when the other's answer caches its UTF-8 (upb does, encoding
            # an invalid-JSON answer), and no running count could follow that.
            parser.process(
                chunk_id,
                (chunk + " ")[:-1],
                processor_type=processor,
                mode=mode,
                final=final,
                sequence=sequence,
                namespace=namespace,
            )
        elif op[0] == "clear":
            parser.clear(op[1], namespace=op[2])
        else:
            clock.now += op[1]
            parser.expire()
        assert_counts_exact(parser)
        assert parser.store.memory <= parser.limits.max_memory_bytes


def test_a_chunk_that_could_pass_the_budget_is_refused_and_changes_nothing() -> None:
    parser = Streams(Limits(max_memory_bytes=1 << 20))
    first = parser.process("id", "x" * 100_000, mode=APPEND)
    assert first.error is None
    before = parser.store.memory
    refused = parser.process("id", "y" * 400_000, mode=APPEND, sequence=7)
    assert refused.error is not None and refused.error.status_hint == "RESOURCE_EXHAUSTED"
    assert "--max-memory-bytes" in refused.error.message
    assert refused.delta == "" and refused.output is None and not refused.final
    assert parser.complete_text("id").text == "x" * 100_000
    assert parser.complete_text("id").last_sequence == 0
    assert parser.store.memory == before
    assert_counts_exact(parser)


def test_a_new_id_refused_by_the_budget_is_not_tracked() -> None:
    parser = Streams(Limits(max_memory_bytes=64 << 10))
    refused = parser.process("new", "z" * 60_000, mode=APPEND)
    assert refused.error is not None and "--max-memory-bytes" in refused.error.message
    with pytest.raises(NotFound):
        parser.complete_text("new")
    assert parser.store.counts() == {}


def test_filling_the_budget_with_ids_stops_at_the_budget() -> None:
    budget = 4 << 20
    parser = Streams(Limits(max_memory_bytes=budget))
    accepted = 0
    for n in range(200):
        result = parser.process(f"id-{n}", "w" * 50_000, mode=APPEND)
        if result.error is None:
            accepted += 1
        else:
            assert "--max-memory-bytes" in result.error.message
    assert 0 < accepted < 200
    assert parser.store.memory <= budget
    assert_counts_exact(parser)


def test_a_namespace_has_its_own_memory_and_id_quotas() -> None:
    parser = Streams(
        Limits(max_memory_bytes=8 << 20, tenant_max_memory_bytes=1 << 20, tenant_max_ids=3)
    )
    for n in range(3):
        assert parser.process(f"id-{n}", "a", namespace="greedy").error is None
    fourth = parser.process("id-3", "a", namespace="greedy")
    assert fourth.error is not None and "--tenant-max-ids" in fourth.error.message
    big = parser.process("id-0", "b" * 900_000, mode=None, namespace="greedy")
    assert big.error is not None and "--tenant-max-memory-bytes" in big.error.message
    # Another namespace is untouched by the first one's use.
    for n in range(3):
        assert (
            parser.process(f"id-{n}", "c" * 200_000, mode=APPEND, namespace="modest").error is None
        )
    assert_counts_exact(parser)


def test_a_namespace_full_of_finished_ids_drops_its_own_earliest_first() -> None:
    parser = Streams(Limits(tenant_max_ids=2))
    parser.process("other", "x", sequence=1, final=True, namespace="b")
    for n in range(4):
        assert parser.process(f"id-{n}", "x", sequence=1, final=True, namespace="a").error is None
    assert parser.store.usage("a")[0] == 2
    # The other namespace's finished id is still remembered: a resend is a duplicate.
    assert parser.process("other", "x", sequence=1, namespace="b").duplicate
    # Of the first namespace, the earliest finished were dropped: a resend is new.
    assert not parser.process("id-0", "x", sequence=1, namespace="a").duplicate
    assert_counts_exact(parser)


def test_kept_final_responses_are_charged_and_released() -> None:
    parser = Streams()
    parser.process("id", '{"plan_markdown": "' + "p" * 10_000, processor_type="plan", sequence=1)
    live = parser.store.memory
    final = parser.answer("id", '"}', sequence=2, final=True)
    assert final is not None and final.result.final and final.result.error is None
    finished = parser.store.memory
    assert FINISHED_COST + len(final.response) < finished < live + 30_000
    again = parser.answer("id", '"}', sequence=2, final=True)
    assert again is not None and again.response == as_duplicate(final.response)
    parser.clear("id")
    assert parser.store.memory == 0
    assert_counts_exact(parser)


def test_id_cost_covers_what_an_empty_id_really_holds() -> None:
    parser = Streams()
    for processor in PROCESSORS:
        parser.process("warm-" + processor, "{", processor_type=processor, sequence=1)
    gc.collect()
    count = 200
    charged_before = parser.store.memory
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for n in range(count):
            for processor in PROCESSORS:
                parser.process(f"{processor}-{n}", "{", processor_type=processor, sequence=1)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    real = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    charged = parser.store.memory - charged_before
    assert real <= charged
    # ...and not by a wide margin: the charge is a measure, not a guess.
    assert charged <= 3 * real + count * len(PROCESSORS) * ID_COST // 2


def race_a_final_with_a_clear_and_a_read() -> None:
    parser = Streams(Limits(max_ids=4))
    text = '{"files": [' + ",".join(f'{{"name": "f{i}"}}' for i in range(300))
    parser.process("id", text, processor_type="metric", sequence=1)
    barrier = threading.Barrier(3)
    results: dict[str, object] = {}

    def final() -> None:
        barrier.wait()
        results["final"] = parser.process("id", "]}", sequence=2, final=True)

    def clear() -> None:
        barrier.wait()
        results["clear"] = parser.clear("id")

    def read() -> None:
        barrier.wait()
        try:
            results["read"] = parser.complete_text("id").text
        except NotFound:
            results["read"] = None

    threads = [threading.Thread(target=f) for f in (final, clear, read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["read"] in (None, text)
    final_result = results["final"]
    assert final_result.error is None and not final_result.duplicate
    assert final_result.complete_text in (text + "]}", "]}")
    # Whatever the order, a new sequence 1 is applied, not taken for a duplicate of the
    # cleared id's.
    parser.clear("id")
    fresh = parser.process("id", "new", sequence=1)
    assert not fresh.duplicate and fresh.delta == "new"
    parser.clear("id")
    assert parser.store.memory == 0
    assert parser.store.counts() == {} == parser.store.recount()


def test_clear_and_read_racing_a_final_in_flight_leave_a_serial_order() -> None:
    for _ in range(60):
        race_a_final_with_a_clear_and_a_read()


def assert_store_consistent(parser: Streams) -> None:
    """What any serial order of requests, clears and expiry leaves: every key live or
    finished, not both; the final cache's size its entries' sum; every count exact."""
    store = parser.store
    live, finished = set(store._live), set(store._finished)
    assert not live & finished
    assert store._final_bytes == sum(store._final_results.values())
    assert set(store._final_results) <= finished
    by_namespace = {key for keys in store._tenant_finished.values() for key in keys}
    assert by_namespace == finished
    kept_by_namespace = [key for keys in store._tenant_finals.values() for key in keys]
    assert sorted(kept_by_namespace) == sorted(store._final_results)
    assert all(state.alive for state in store._live.values())
    assert_counts_exact(parser)
    assert store._total.reserved == 0
    assert all(usage.reserved == 0 for usage in store._tenants.values())


thread_operation = st.one_of(
    st.tuples(
        st.just("chunk"),
        st.sampled_from(["a", "b"]),
        st.sampled_from(['{"files": [{"name": "f", "yml_content": "', "x" * 3000, "]}"]),
        st.booleans(),
        st.integers(0, 5),
    ),
    st.tuples(st.just("clear"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("read"), st.sampled_from(["a", "b"])),
    st.tuples(st.just("expire")),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(thread_operation, max_size=25), min_size=2, max_size=4))
def test_threads_racing_on_shared_ids_leave_the_store_consistent(per_thread) -> None:
    clock = FakeClock()
    parser = Streams(Limits(max_ids=3, idle_ttl=5), clock=clock)
    barrier = threading.Barrier(len(per_thread))
    failures: list[BaseException] = []

    def run(operations) -> None:
        try:
            barrier.wait()
            for op in operations:
                if op[0] == "chunk":
                    _, chunk_id, chunk, final, sequence = op
                    result = parser.process(
                        chunk_id, chunk, processor_type="metric", final=final, sequence=sequence
                    )
                    assert result.error is None or result.error.status_hint != "UNKNOWN"
                elif op[0] == "clear":
                    parser.clear(op[1])
                elif op[0] == "read":
                    try:
                        parser.complete_text(op[1])
                    except NotFound:
                        pass
                else:
                    clock.now += 3
                    parser.expire()
        except BaseException as error:  # noqa: BLE001 - reported below, on the test's thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(ops,)) for ops in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert_store_consistent(parser)
    # And it goes on serving: a cleared id takes a new sequence 1 as new.
    for chunk_id in ("a", "b"):
        parser.clear(chunk_id)
        assert not parser.process(chunk_id, "n", sequence=1).duplicate
    assert_store_consistent(parser)


class _GatedProcessor:
    """A processor whose final waits at a gate: the test decides what happens meanwhile."""

    description = "waits for the test at the final chunk"
    entered = threading.Event()
    gate = threading.Event()

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        pass

    def process(self, new_text, *, final, complete_text):
        if final:
            _GatedProcessor.entered.set()
            assert _GatedProcessor.gate.wait(10)
        return None


@pytest.mark.parametrize("meanwhile", ["clear", "expire"])
def test_an_id_cleared_while_its_final_is_in_flight_is_forgotten(meanwhile) -> None:
    """A final in flight, then ClearChunk (or expiry) of its id before it is done: the
    store ends as if the final came first and the clear after it."""
    clock = FakeClock()
    parser = Streams(Limits(idle_ttl=5), clock=clock)
    parser._factories["gated"] = _GatedProcessor
    _GatedProcessor.entered.clear()
    _GatedProcessor.gate.clear()
    assert parser.process("id", "text", processor_type="gated", sequence=1).error is None
    results = []
    final = threading.Thread(
        target=lambda: results.append(parser.process("id", "!", sequence=2, final=True))
    )
    final.start()
    assert _GatedProcessor.entered.wait(10)
    if meanwhile == "clear":
        assert parser.clear("id")
    else:
        clock.now += 10
        assert parser.expire() == 1
    _GatedProcessor.gate.set()
    final.join()
    assert results[0].final and results[0].complete_text == "text!"
    assert_store_consistent(parser)
    assert parser.store.counts() == {}
    fresh = parser.process("id", "new", sequence=1)
    assert not fresh.duplicate and fresh.delta == "new"
    assert_store_consistent(parser)


class _BrokenProcessor:
    description = "raises what a processor should not"

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        pass

    def process(self, new_text, *, final, complete_text):
        if "boom" in new_text:
            raise ValueError("a bug")
        return None


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(pb.DELTA_MODE_SNAPSHOT, id="snapshot"),
        pytest.param(pb.DELTA_MODE_AUTO, id="auto"),
    ],
)
def test_reading_a_text_through_the_service_leaves_what_it_holds_as_counted(
    grpc_server, conversation, stub, mode
) -> None:
    # SNAPSHOT keeps the chunk as the text, AUTO as the last one seen. Encoding a str for
    # protobuf caches its UTF-8 inside it: a read that handed the held snapshot to upb made
    # it grow by its UTF-8 size, uncounted.
    text = "é" * 1000 + "😀" * 1000
    answer = conversation.send("held", text, mode=mode)
    assert not answer.HasField("error")
    store = grpc_server.streams.store
    before = store.counts()
    for _ in range(2):
        read = stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="held"), timeout=TIMEOUT)
        assert read.text == text
    assert store.recount() == store.counts() == before


def test_a_processor_that_raises_stops_but_the_text_is_tracked_and_counted() -> None:
    parser = Streams()
    parser._factories["broken"] = _BrokenProcessor
    first = parser.process("id", "fine ", processor_type="broken", mode=APPEND, sequence=1)
    assert first.error is None
    failed = parser.process("id", "boom", sequence=2)
    assert failed.error is not None and failed.error.status_hint == "INTERNAL"
    assert isinstance(failed.error.__cause__, ValueError)
    assert failed.delta == "boom"
    after = parser.process("id", " more boom", sequence=3)
    assert after.error is None and after.delta == " more boom"
    info = parser.complete_text("id")
    assert (info.text, info.last_sequence) == ("fine boom more boom", 3)
    assert_store_consistent(parser)


def test_kept_final_responses_give_way_to_new_work() -> None:
    """Kept finals are a cache: when the budget is full of them, the oldest are dropped for
    a new chunk, and a duplicate of a dropped final is still a duplicate, without text."""
    parser = Streams(Limits(max_memory_bytes=4 << 20))
    body = '{"plan_markdown": "' + "p" * 200_000
    finished = 0
    for n in range(40):
        parser.process(f"done-{n}", body, processor_type="plan", mode=APPEND, sequence=1)
        result = parser.process(f"done-{n}", '"}', sequence=2, final=True)
        finished += result.error is None
    assert finished == 40
    assert parser.store._final_results
    for n in range(5):
        fresh = parser.process(f"new-{n}", "n" * 200_000, mode=APPEND, sequence=1)
        assert fresh.error is None, fresh.error
    assert parser.store.memory <= 4 << 20
    again = parser.process("done-0", '"}', sequence=2, final=True)
    assert again.duplicate and again.final
    assert_store_consistent(parser)


def test_a_namespace_makes_room_only_from_its_own_kept_finals() -> None:
    parser = Streams(Limits(max_memory_bytes=16 << 20, tenant_max_memory_bytes=3 << 20))
    body = "x" * 150_000
    for namespace in ("a", "b"):
        for n in range(12):
            parser.process(f"id-{n}", body, mode=APPEND, sequence=1, namespace=namespace)
            parser.process(f"id-{n}", "!", sequence=2, final=True, namespace=namespace)
    kept_b = [key for key in parser.store._final_results if key[0] == "b"]
    for n in range(5):
        result = parser.process(f"new-{n}", body, mode=APPEND, sequence=1, namespace="a")
        assert result.error is None, result.error
    assert [key for key in parser.store._final_results if key[0] == "b"] == kept_b
    assert_store_consistent(parser)


def test_a_chunk_that_stops_the_processor_is_not_kept_alive_uncounted() -> None:
    """Invalid JSON stops an id's processor, which keeps its error: that error must not
    keep the chunk that caused it (through its traceback) beyond what the id is charged."""
    parser = Streams()
    body = '"ab",' * 50_000
    gc.collect()
    charged_before = parser.store.memory
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(10):
            chunk = (body + " ")[:-1]  # a chunk of its own, as each request brings
            result = parser.process(f"id-{n}", chunk, processor_type="json", mode=APPEND)
            assert result.error is not None and result.error.status_hint == "INVALID_ARGUMENT"
        del chunk, result
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown <= parser.store.memory - charged_before


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["a", "é", "中", "😀"]),
    st.sampled_from([APPEND, AUTO, SNAPSHOT]),
    st.sampled_from(["text", "json", "plan", "metric"]),
    st.lists(st.integers(1, 300), min_size=1, max_size=30),
    st.integers(4_000, 400_000),
)
def test_no_chunk_takes_the_charge_past_the_budget(character, mode, processor, sizes, budget):
    """Whatever the characters take in memory, whatever the mode and processor: a chunk is
    applied only if what it adds fits, so the charge never passes the budget, however
    tight."""
    parser = Streams(Limits(max_memory_bytes=budget))
    text = ""
    for sequence, size in enumerate(sizes, 1):
        chunk = character * size
        if mode == SNAPSHOT:
            text += chunk
            chunk = text
        parser.process("id", chunk, processor_type=processor, mode=mode, sequence=sequence)
        assert parser.store.memory <= budget
    assert_counts_exact(parser)
