"""Streams, what the servicer calls: ids, limits, modes, sequences, expiry, threads."""

from __future__ import annotations

import random
import re
import threading
import time

import pytest
from chunkwise.v1 import streaming_pb2 as pb
from helpers import apply_ops, cut, loads_exact

from server import _convert, _wire
from server._wire import as_duplicate
from server.engine import (
    ChunkResult,
    InvalidArgument,
    Limits,
    Mode,
    NotFound,
    PartialJson,
    TextInfo,
)
from server.streams import Streams

AUTO, APPEND, SNAPSHOT = Mode.AUTO, Mode.APPEND, Mode.SNAPSHOT


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def status(result) -> str | None:
    return None if result.error is None else result.error.status_hint


def text_of(parser: Streams, chunk_id: str, **kw) -> str:
    return parser.complete_text(chunk_id, **kw).text


def tracked(parser: Streams, chunk_id: str, **kw) -> bool:
    try:
        parser.complete_text(chunk_id, **kw)
    except NotFound:
        return False
    return True


# ------------------------------------------------------------------------ ids


@pytest.mark.parametrize("chunk_id", ["a" * 256, "é" * 128, "😀" * 64])
def test_an_id_of_256_bytes_is_fine(chunk_id):
    parser = Streams()
    assert parser.process(chunk_id, "x").error is None
    assert text_of(parser, chunk_id) == "x"
    assert parser.clear(chunk_id) is True


@pytest.mark.parametrize("chunk_id", ["", "a" * 257, "é" * 129, "😀" * 64 + "a"])
def test_an_empty_or_oversized_id_is_invalid_everywhere(chunk_id):
    # "é" * 129 is 129 code points but 258 UTF-8 bytes.
    parser = Streams()
    result = parser.process(chunk_id, "x", processor_type="json")
    assert status(result) == "INVALID_ARGUMENT"
    assert result.chunk_id == chunk_id
    with pytest.raises(InvalidArgument):
        parser.complete_text(chunk_id)
    with pytest.raises(InvalidArgument):
        parser.clear(chunk_id)


def test_id_limit_is_configurable():
    parser = Streams(Limits(max_id_bytes=4))
    assert parser.process("éé", "x").error is None
    assert status(parser.process("ééa", "x")) == "INVALID_ARGUMENT"


def test_result_echoes_id_and_sequence():
    result = Streams().process("echo", "abc", sequence=7)
    assert (result.chunk_id, result.sequence, result.delta) == ("echo", 7, "abc")
    assert (result.final, result.complete_text, result.reset, result.duplicate) == (
        False,
        "",
        False,
        False,
    )


def test_untracked_id_is_not_found_and_clear_says_false():
    parser = Streams()
    with pytest.raises(NotFound):
        parser.complete_text("nobody")
    assert parser.clear("nobody") is False
    parser.process("x", "t")
    assert parser.clear("x") is True
    assert parser.clear("x") is False
    assert not tracked(parser, "x")


def test_empty_first_chunk_creates_the_id():
    parser = Streams()
    assert parser.process("e", "").error is None
    assert text_of(parser, "e") == ""


# ------------------------------------------------------------------------ limits


def test_chunk_byte_limit_counts_utf8_and_changes_nothing():
    parser = Streams(Limits(max_chunk_bytes=10))
    assert parser.process("c", "é" * 5, mode=APPEND).error is None  # 10 bytes
    result = parser.process("c", "é" * 5 + "a", mode=APPEND, sequence=1)  # 11 bytes, 6 chars
    assert status(result) == "RESOURCE_EXHAUSTED"
    assert result.delta == ""
    assert parser.complete_text("c") == TextInfo(("é" * 5).encode(), 0, "text")
    assert status(parser.process("new", "a" * 11)) == "RESOURCE_EXHAUSTED"
    assert not tracked(parser, "new")


def test_text_byte_limit_leaves_the_text_as_it_was():
    parser = Streams(Limits(max_text_bytes=10))
    parser.process("t", "aaaaa", mode=APPEND, sequence=1)
    result = parser.process("t", "ééé", mode=APPEND, sequence=2)  # 11 bytes in all
    assert status(result) == "RESOURCE_EXHAUSTED"
    info = parser.complete_text("t")
    assert (info.text, info.last_sequence) == ("aaaaa", 1)
    # The refused request was not applied: the same sequence is not a duplicate.
    result = parser.process("t", "éé", mode=APPEND, sequence=2)
    assert (result.error, result.duplicate, result.delta) == (None, False, "éé")
    assert text_of(parser, "t") == "aaaaaéé"


def test_a_refused_first_request_does_not_create_the_id():
    parser = Streams(Limits(max_text_bytes=3))
    assert status(parser.process("t", "abcd", mode=APPEND)) == "RESOURCE_EXHAUSTED"
    assert not tracked(parser, "t")


def test_max_ids_refuses_a_new_id_but_not_a_known_one():
    parser = Streams(Limits(max_ids=3))
    for name in "abc":
        assert parser.process(name, name).error is None
    result = parser.process("d", "d")
    assert status(result) == "RESOURCE_EXHAUSTED"
    assert not tracked(parser, "d")
    assert parser.process("a", "a2").error is None
    parser.clear("b")
    assert parser.process("d", "d").error is None


def test_json_depth_limit():
    parser = Streams(Limits(max_json_depth=3))
    assert parser.process("ok", "[[[", processor_type="json").error is None
    result = parser.process("deep", "[[[[", processor_type="json")
    assert status(result) == "INVALID_ARGUMENT"
    assert re.search(r"at offset 3\b", result.error.message)
    assert result.delta == "[[[["


def test_default_json_depth_is_512():
    parser = Streams()
    result = parser.process("ok", "[" * 512 + "]" * 512, processor_type="json", final=True)
    assert result.error is None
    result = parser.process("deep", "[" * 100_000, processor_type="json")
    assert status(result) == "INVALID_ARGUMENT"
    assert re.search(r"at offset 512\b", result.error.message)


def test_limits_reject_non_positive_values():
    with pytest.raises(ValueError, match="max_ids"):
        Limits(max_ids=0)


# ------------------------------------------------------------------------ processor and mode


def test_first_request_fixes_processor_and_mode():
    parser = Streams()
    assert parser.process("j", "[1,", processor_type="json", mode=APPEND).error is None
    later = parser.process("j", " 2]")  # empty / unspecified: the id's own
    assert later.error is None and isinstance(later.output, PartialJson)
    assert parser.process("j", "", processor_type="json", mode=APPEND).error is None

    for kwargs in ({"processor_type": "text"}, {"mode": SNAPSHOT}, {"mode": AUTO}):
        refused = parser.process("j", "   ", **kwargs)
        assert status(refused) == "FAILED_PRECONDITION", kwargs
    assert parser.complete_text("j") == TextInfo(b"[1, 2]", 0, "json")


def test_unspecified_processor_and_mode_mean_text_and_auto():
    parser = Streams()
    parser.process("x", "ab")
    assert parser.process("x", "abc", processor_type="text", mode=AUTO).delta == "c"
    assert status(parser.process("x", "d", processor_type="json")) == "FAILED_PRECONDITION"
    assert status(parser.process("x", "d", mode=APPEND)) == "FAILED_PRECONDITION"
    assert text_of(parser, "x") == "abc"


@pytest.mark.parametrize("mode", [4, 99, -1])
def test_a_mode_outside_the_enum_is_invalid(mode):
    """The proto's DeltaMode numbers map to the engine's modes by name, 0 to the id's own;
    any other number is INVALID_ARGUMENT naming the known ones (the service applies this
    before the id's own mode: tests/test_bad_input.py)."""
    with pytest.raises(InvalidArgument, match=f"unknown delta mode {mode}; known: 1 \\(AUTO\\)"):
        _convert.delta_mode(mode)
    assert _convert.delta_mode(0) is None
    for value in pb.DeltaMode.values():
        if value:
            name = pb.DeltaMode.Name(value).removeprefix("DELTA_MODE_")
            assert _convert.delta_mode(value) is Mode[name]


def test_unknown_processor_is_invalid_and_creates_nothing():
    parser = Streams()
    result = parser.process("u", "x", processor_type="yaml")
    assert status(result) == "INVALID_ARGUMENT"
    assert not tracked(parser, "u")


def test_processors_are_listed_sorted_with_descriptions():
    listed = Streams().processors()
    names = [name for name, _ in listed]
    assert names == sorted(names)
    assert {"dashboard", "json", "metric", "plan", "search_data_catalog", "text"} <= set(names)
    assert all(description for _, description in listed)


class _Silent:
    """A processor factory that says its processors output nothing."""

    description = "Never made."
    reads_text = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a processor that reads no text was made")


def test_a_processor_that_reads_no_text_is_never_made_and_the_text_still_tracks():
    parser = Streams()
    parser._factories["silent"] = _Silent
    results = [
        parser.process("s", "ab", processor_type="silent", mode=SNAPSHOT, sequence=1),
        parser.process("s", "abc", sequence=2),
        parser.process("s", "xyz", sequence=3),  # a rewrite: the processor would be remade
        parser.process("s", "xyz!", sequence=4, final=True),
    ]
    assert [(r.delta, r.reset, r.output, r.error) for r in results] == [
        ("ab", False, None, None),
        ("c", False, None, None),
        ("xyz", True, None, None),
        ("!", False, None, None),
    ]
    assert results[-1].complete_text == "xyz!"


def test_the_text_processor_reads_no_text_and_outputs_nothing():
    parser = Streams()
    results = [parser.process("t", piece, processor_type="text", mode=APPEND) for piece in "ab"]
    final = parser.process("t", "c", final=True)
    assert [r.output for r in [*results, final]] == [None, None, None]
    assert final.complete_text == "abc"


# ------------------------------------------------------------------------ final, errors


def test_final_returns_the_complete_text_and_clears_the_id():
    parser = Streams()
    parser.process("f", "Hello, ", mode=APPEND)
    result = parser.process("f", "world", final=True)
    assert (result.final, result.delta, result.complete_text) == (True, "world", "Hello, world")
    assert not tracked(parser, "f")
    # Unnumbered, the id starts afresh.
    assert parser.process("f", "again", final=True).complete_text == "again"


def test_invalid_json_reports_an_error_and_keeps_tracking():
    parser = Streams()
    result = parser.process("bad", '{"😀": x', processor_type="json", mode=APPEND, sequence=1)
    assert status(result) == "INVALID_ARGUMENT"
    assert re.search(r"at offset 6\b", result.error.message)  # code points, not bytes
    assert result.delta == '{"😀": x'
    later = parser.process("bad", "yz", sequence=2)
    assert (later.error, later.output, later.delta) == (None, None, "yz")
    assert parser.complete_text("bad") == TextInfo('{"😀": xyz'.encode(), 2, "json")


def test_final_on_unfinished_json():
    parser = Streams()
    parser.process("u", '{"a": [1', processor_type="json", mode=APPEND)
    result = parser.process("u", ", 2", final=True)
    assert status(result) == "INVALID_ARGUMENT"
    assert re.search(r"unexpected end of JSON at offset 11\b", result.error.message)
    assert (result.final, result.complete_text, result.delta) == (True, '{"a": [1, 2', ", 2")
    assert not tracked(parser, "u")


def test_snapshot_rewrite_resets_the_processor():
    parser = Streams()
    first = parser.process("s", '{"a": "xy', processor_type="json", mode=SNAPSHOT)
    assert apply_ops(first.output.deltas) == {"a": "xy"}
    rewrite = parser.process("s", '{"b": [true ')
    assert (rewrite.reset, rewrite.delta) == (True, '{"b": [true ')
    assert apply_ops(rewrite.output.deltas) == {"b": [True]}  # built from nothing again
    final = parser.process("s", '{"b": [true ]}', final=True)
    assert apply_ops(rewrite.output.deltas + final.output.deltas) == {"b": [True]}


def test_snapshot_rewrite_clears_an_invalid_json_error():
    parser = Streams()
    assert parser.process("s", "{x", processor_type="json", mode=SNAPSHOT).error is not None
    rewrite = parser.process("s", "[1]")
    assert rewrite.reset and rewrite.error is None
    final = parser.process("s", "[1]", final=True)
    assert final.error is None
    assert apply_ops(rewrite.output.deltas + final.output.deltas) == [loads_exact("1")]


# ------------------------------------------------------------------------ sequences


def test_a_resent_request_is_a_duplicate_with_the_same_answer():
    parser = Streams()
    first = [
        parser.answer("s", '{"plan_markdown": "ab', processor_type="plan", mode=APPEND, sequence=1),
        parser.answer("s", "cd", sequence=2),
    ]
    again = parser.answer("s", "cd", sequence=2)
    assert again.result.duplicate and again.result.error is None
    assert (again.result.chunk_id, again.result.sequence) == ("s", 2)
    assert again.response == as_duplicate(first[1].response)
    older = parser.answer("s", "something else", sequence=1)
    assert older.result.duplicate
    assert older.response in [
        as_duplicate(first[0].response),
        _wire.chunk_response(ChunkResult("s", 1, duplicate=True)),
    ]
    assert parser.complete_text("s") == TextInfo(b'{"plan_markdown": "abcd', 2, "plan")


def test_sequence_numbers_may_skip_but_never_go_back():
    parser = Streams()
    parser.process("g", "a", mode=APPEND, sequence=2)
    assert not parser.process("g", "b", sequence=5).duplicate
    assert parser.process("g", "c", sequence=3).duplicate
    assert parser.process("g", "c", sequence=5).duplicate
    assert parser.complete_text("g") == TextInfo(b"ab", 5, "text")


def test_sequence_zero_is_never_a_duplicate():
    parser = Streams()
    parser.process("z", "a", mode=APPEND, sequence=4)
    for _ in range(2):
        result = parser.process("z", "a", sequence=0)
        assert not result.duplicate and result.delta == "a"
    assert parser.complete_text("z") == TextInfo(b"aaa", 4, "text")


def test_a_chunk_with_an_empty_delta_counts_as_applied():
    parser = Streams()
    parser.process("e", "abc", sequence=1)
    same = parser.process("e", "abc", sequence=2)  # AUTO: nothing new, still applied
    assert (same.delta, same.duplicate) == ("", False)
    assert parser.complete_text("e") == TextInfo(b"abc", 2, "text")
    assert parser.process("e", "abcd", sequence=2).duplicate


def test_invalid_json_counts_as_applied():
    parser = Streams()
    parser.process("b", "nope", processor_type="json", mode=APPEND, sequence=1)
    again = parser.process("b", "nope", sequence=1)
    assert again.duplicate
    assert parser.complete_text("b") == TextInfo(b"nope", 1, "json")


def test_after_a_final_a_resend_is_a_duplicate():
    parser = Streams()
    parser.process("f", "ab", mode=APPEND, sequence=1)
    final = parser.process("f", "cd", final=True, sequence=2)
    assert final.complete_text == "abcd"
    resent = parser.process("f", "cd", final=True, sequence=2)
    assert resent.duplicate and resent.final
    assert resent.complete_text in {"abcd", ""}
    assert parser.process("f", "ab", sequence=1).duplicate
    assert not tracked(parser, "f")
    # Numbered above the final, or unnumbered, the id starts afresh.
    fresh = parser.process("f", "new", sequence=3)
    assert (fresh.duplicate, fresh.delta) == (False, "new")
    assert parser.complete_text("f") == TextInfo(b"new", 3, "text")


def test_unnumbered_request_after_a_final_starts_afresh():
    parser = Streams()
    parser.process("f", "old", final=True, sequence=2)
    fresh = parser.process("f", "new", sequence=0)
    assert (fresh.duplicate, fresh.delta) == (False, "new")


def test_clear_after_a_final_forgets_the_sequence():
    parser = Streams()
    parser.process("f", "old", final=True, sequence=2)
    parser.clear("f")
    fresh = parser.process("f", "new", sequence=1)
    assert (fresh.duplicate, fresh.delta) == (False, "new")


def test_a_refused_request_after_a_final_keeps_the_remembered_sequence():
    # A refused request changes nothing, so the final's sequence is still remembered.
    parser = Streams(Limits(max_text_bytes=4))
    parser.process("f", "abc", final=True, sequence=5)
    assert status(parser.process("f", "toolong", sequence=6)) == "RESOURCE_EXHAUSTED"
    assert parser.process("f", "abc", final=True, sequence=5).duplicate


def test_a_refused_new_id_does_not_drop_a_remembered_sequence():
    parser = Streams(Limits(max_ids=2, max_text_bytes=4))
    parser.process("done", "abc", final=True, sequence=1)
    parser.process("live", "x")
    assert status(parser.process("new", "toolong")) == "RESOURCE_EXHAUSTED"
    assert parser.process("done", "abc", final=True, sequence=1).duplicate


# ------------------------------------------------------------------------ namespaces


def test_namespaces_isolate_ids():
    parser = Streams()
    parser.process("x", "one", namespace="tenant-1", processor_type="json")
    parser.process("x", "two", namespace="tenant-2")
    assert text_of(parser, "x", namespace="tenant-1") == "one"
    assert text_of(parser, "x", namespace="tenant-2") == "two"
    assert not tracked(parser, "x")
    assert parser.clear("x", namespace="tenant-1")
    assert text_of(parser, "x", namespace="tenant-2") == "two"
    assert parser.complete_text("x", namespace="tenant-2").processor_type == "text"


# ------------------------------------------------------------------------ expiry


def test_idle_ids_expire_and_reads_do_not_keep_them_alive():
    clock = FakeClock()
    parser = Streams(Limits(idle_ttl=10), clock=clock)
    parser.process("idle", "a")
    parser.process("busy", "b")
    clock.now += 6
    parser.process("busy", "bc")  # a request keeps an id alive
    assert text_of(parser, "idle") == "a"  # a read does not
    clock.now += 3.9
    assert parser.expire() == 0
    clock.now += 0.2  # "idle" untouched for 10.1 s
    assert parser.expire() == 1
    assert not tracked(parser, "idle")
    assert text_of(parser, "busy") == "bc"
    clock.now += 6
    assert parser.expire() == 1
    assert not tracked(parser, "busy")


def test_a_finished_ids_sequence_is_remembered_for_the_idle_period():
    clock = FakeClock()
    parser = Streams(Limits(idle_ttl=10), clock=clock)
    parser.process("f", "abc", final=True, sequence=5)
    clock.now += 9.9
    parser.expire()
    assert parser.process("f", "abc", final=True, sequence=5).duplicate
    clock.now += 0.2
    parser.expire()
    result = parser.process("f", "abc", final=True, sequence=5)
    assert not result.duplicate and result.complete_text == "abc"


def test_remembered_sequences_count_toward_max_ids_and_go_earliest_first():
    parser = Streams(Limits(max_ids=3))
    parser.process("A", "a", final=True, sequence=1)
    parser.process("B", "b", final=True, sequence=1)
    parser.process("C", "c", sequence=1)
    # Full: A, B remembered, C live. A new id drops A, finished earliest.
    assert parser.process("D", "d", sequence=1).error is None
    assert parser.process("B", "b", final=True, sequence=1).duplicate
    # A was dropped, so this is a new id, which drops B.
    result = parser.process("A", "a2", sequence=1)
    assert (result.error, result.duplicate) == (None, False)
    # C, D and A are live: a live id is never dropped.
    assert status(parser.process("E", "e", sequence=1)) == "RESOURCE_EXHAUSTED"
    assert [text_of(parser, k) for k in "CDA"] == ["c", "d", "a2"]


# ------------------------------------------------------------------------ threads


def random_text(rnd: random.Random) -> str:
    alphabet = 'abcxyz {}[]":,\n\\é€😀'
    return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60)))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [APPEND, SNAPSHOT])
def test_many_threads_never_lose_or_mix_text(mode):
    parser = Streams()
    threads, ids_per_thread = 16, 200
    start = threading.Barrier(threads)
    failures: list[str] = []

    def work(t: int) -> None:
        rnd = random.Random(f"{t}-{mode.name}")
        texts = {f"id-{t}-{i}": random_text(rnd) for i in range(ids_per_thread)}
        pieces = {}
        for chunk_id, text in texts.items():
            count = rnd.randint(0, min(4, len(text) + 1))
            positions = sorted(rnd.sample(range(len(text) + 1), count))
            pieces[chunk_id] = cut(text, positions)
        sent = {chunk_id: "" for chunk_id in texts}
        deltas = {chunk_id: [] for chunk_id in texts}
        pending = list(texts)
        start.wait()
        try:
            while pending:
                chunk_id = rnd.choice(pending)
                piece = pieces[chunk_id].pop(0)
                sent[chunk_id] += piece
                chunk = piece if mode == APPEND else sent[chunk_id]
                result = parser.process(chunk_id, chunk, mode=mode, namespace=f"m{mode}")
                deltas[chunk_id].append(result.delta)
                if result.error or result.reset:
                    failures.append(f"{chunk_id}: {result}")
                if not pieces[chunk_id]:
                    pending.remove(chunk_id)
            for chunk_id, text in texts.items():
                info = parser.complete_text(chunk_id, namespace=f"m{mode}")
                final = parser.process(
                    chunk_id, "" if mode == APPEND else text, final=True, namespace=f"m{mode}"
                )
                if not (info.text == final.complete_text == "".join(deltas[chunk_id]) == text):
                    failures.append(f"{chunk_id}: {text!r} became {info.text!r}")
        except Exception as exc:  # a thread's exception is otherwise lost; NotFound = lost id
            failures.append(f"thread {t}: {exc!r}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []


@pytest.mark.timeout(120)
def test_threads_appending_to_one_id_lose_nothing():
    # Calls on one id run one at a time: every fragment lands once, each thread's in order.
    parser = Streams()
    threads, fragments = 8, 300
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        start.wait()
        for i in range(fragments):
            parser.process("shared", f"{t}.{i};", mode=APPEND)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    tokens = text_of(parser, "shared").split(";")[:-1]
    assert len(tokens) == threads * fragments
    for t in range(threads):
        assert [tok for tok in tokens if tok.startswith(f"{t}.")] == [
            f"{t}.{i}" for i in range(fragments)
        ]


@pytest.mark.timeout(120)
def test_threads_racing_for_the_last_ids_never_pass_max_ids():
    parser = Streams(Limits(max_ids=50))
    threads, tries = 8, 20
    start = threading.Barrier(threads)
    accepted: list[str] = []  # list.append is atomic
    refusals: list[str | None] = []

    def work(t: int) -> None:
        start.wait()
        for i in range(tries):
            chunk_id = f"{t}-{i}"
            result = parser.process(chunk_id, chunk_id)
            if result.error is None:
                accepted.append(chunk_id)
            else:
                refusals.append(status(result))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(accepted) == 50
    assert refusals == ["RESOURCE_EXHAUSTED"] * (threads * tries - 50)
    assert all(text_of(parser, chunk_id) == chunk_id for chunk_id in accepted)


def test_a_reader_waiting_on_a_first_request_that_is_refused_finds_nothing() -> None:
    """A refused request changes nothing: GetCompleteText, waiting for the id's first
    request while it runs, finds no id when that request is refused."""
    started, go_on = threading.Event(), threading.Event()

    class Slow:
        def __init__(self, chunk_id: str, *, max_json_depth: int) -> None:
            started.set()
            go_on.wait(10)

        def process(self, new_text, *, final, complete_text):
            return None

    parser = Streams(Limits(max_text_bytes=10), processors={"text": Slow})
    first = threading.Thread(target=parser.process, args=("id", "x" * 11))
    first.start()
    assert started.wait(10)
    found: list[object] = []

    def read() -> None:
        try:
            found.append(parser.complete_text("id"))
        except NotFound as missing:
            found.append(missing)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)  # the reader is waiting on the id
    go_on.set()
    first.join(10)
    reader.join(10)
    assert len(found) == 1 and isinstance(found[0], NotFound), found
