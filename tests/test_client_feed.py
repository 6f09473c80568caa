"""What ``process`` sends for one id's chunks: one table of cases, run against the plan the
two clients share and against each client's ``process`` over a real in-process server.

Expected values come from the docstring of ``Client.process``: a list or tuple's last chunk
goes final; any other iterable is followed by a final chunk that adds nothing (empty, or the
last snapshot again in "snapshot" mode).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import pytest

from client import AsyncClient, Client
from client._feed import FeedPlan


@dataclass(frozen=True)
class Case:
    name: str
    chunks: Callable[[], Iterable[str]]  # a fresh iterable for each run
    final: bool
    sent: list[tuple[str, bool]]  # (chunk, final) of each request
    deltas: list[str]  # the server's delta for each, in ``mode``
    mode: str = "append"


CASES = [
    Case("list", lambda: ["ab", "cd"], True, [("ab", False), ("cd", True)], ["ab", "cd"]),
    Case("tuple, not final", lambda: ("ab",), False, [("ab", False)], ["ab"]),
    Case("empty list", lambda: [], True, [("", True)], [""]),
    Case("empty list, not final", lambda: [], False, [], []),
    Case(
        "generator",
        lambda: iter(["ab", "cd"]),
        True,
        [("ab", False), ("cd", False), ("", True)],
        ["ab", "cd", ""],
    ),
    Case("generator, not final", lambda: iter(["ab"]), False, [("ab", False)], ["ab"]),
    Case("empty generator", lambda: iter([]), True, [("", True)], [""]),
    Case(
        "snapshot generator",
        lambda: iter(["ab", "abcd"]),
        True,
        [("ab", False), ("abcd", False), ("abcd", True)],
        ["ab", "cd", ""],
        mode="snapshot",
    ),
    Case(
        "snapshot list",
        lambda: ["ab", "abcd"],
        True,
        [("ab", False), ("abcd", True)],
        ["ab", "cd"],
        mode="snapshot",
    ),
]
ids = itertools.count()


def by_name(cases: list[Case]):
    return pytest.mark.parametrize("case", cases, ids=[case.name for case in cases])


@by_name(CASES)
def test_the_plan_sends_each_chunk_then_any_closing_one(case: Case):
    plan = FeedPlan("id", case.chunks(), processor_type="json", mode=case.mode, final=case.final)
    sends = [plan.send(chunk) for chunk in plan.chunks]
    if (closing := plan.closing()) is not None:
        sends.append(closing)
    assert [(send.chunk, send.final) for send in sends] == case.sent
    assert {(send.chunk_id, send.processor_type, send.mode) for send in sends} <= {
        ("id", "json", case.mode)
    }


def test_the_plan_refuses_a_str_and_a_bad_mode_before_anything_is_sent():
    with pytest.raises(TypeError, match="not a str"):
        FeedPlan("id", "abc", processor_type="", mode=None, final=True)
    with pytest.raises(ValueError, match="'append'"):
        FeedPlan("id", ["abc"], processor_type="", mode="fragments", final=True)


@by_name(CASES)
def test_the_blocking_client_sends_what_the_plan_says(grpc_server, case: Case):
    chunk_id = f"feed-{next(ids)}"
    with Client(grpc_server.address, timeout=30) as chunkwise:
        updates = list(chunkwise.process(chunk_id, case.chunks(), mode=case.mode, final=case.final))
    assert [(u.delta, u.final) for u in updates] == [
        (delta, final) for delta, (_, final) in zip(case.deltas, case.sent, strict=True)
    ]
    assert [u.sequence for u in updates] == list(range(1, len(case.sent) + 1))


async def one_by_one(chunks: Iterable[str]) -> AsyncIterator[str]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


ASYNC_CASES = [
    *CASES,
    *(
        Case(f"{case.name}, async", lambda case=case: one_by_one(case.chunks()), case.final,
             case.sent, case.deltas, case.mode)
        for case in CASES
        if "generator" in case.name
    ),
]  # fmt: skip


@by_name(ASYNC_CASES)
def test_the_async_client_sends_what_the_plan_says(grpc_server, case: Case):
    chunk_id = f"feed-{next(ids)}"

    async def run() -> list:
        async with AsyncClient(grpc_server.address, timeout=30) as chunkwise:
            updates = chunkwise.process(chunk_id, case.chunks(), mode=case.mode, final=case.final)
            return [update async for update in updates]

    updates = asyncio.run(run())
    assert [(u.delta, u.final) for u in updates] == [
        (delta, final) for delta, (_, final) in zip(case.deltas, case.sent, strict=True)
    ]
    assert [u.sequence for u in updates] == list(range(1, len(case.sent) + 1))
