"""Engine workers run below the event loop's scheduling priority (server/_workers.py)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc

from server import _workers
from server._workers import LOWEST_PRIORITY, engine_executor
from server.config import Config
from server.servicer import OFFLOAD_CHARS
from tests.grpc_server import TIMEOUT, InProcessServer

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="only Linux sets a priority per thread"
)


def _own_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def _loop_priority() -> int:
    return _own_priority()


def _thread_priorities() -> dict[int, int]:
    """Each thread of this process by native id, with its nice value, read from /proc."""
    priorities = {}
    for task in Path("/proc/self/task").iterdir():
        stat = (task / "stat").read_text()
        # The fields after the command name, which is in parentheses and may hold spaces:
        # nice is the 19th field of the line, the 17th after the name.
        after_name = stat[stat.rindex(")") + 2 :].split()
        priorities[int(task.name)] = int(after_name[16])
    return priorities


@pytest.mark.parametrize("nice", [0, 1, 7, LOWEST_PRIORITY])
def test_each_worker_runs_the_given_steps_below_the_thread_that_made_the_pool(nice: int) -> None:
    base = _own_priority()
    with engine_executor(3, nice) as pool:
        seen = {pool.submit(_own_priority).result(TIMEOUT) for _ in range(9)}
    assert seen == {min(base + nice, LOWEST_PRIORITY)}
    assert _own_priority() == base


def test_a_worker_that_cannot_be_niced_still_works_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*_: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_workers.os, "setpriority", refuse)
    caplog.set_level(logging.WARNING, logger="chunkwise")
    base = _own_priority()
    with engine_executor(1, 5) as pool:
        assert pool.submit(_own_priority).result(TIMEOUT) == base
    [record] = [r for r in caplog.records if r.getMessage() == "worker priority not lowered"]
    assert record.levelno == logging.WARNING
    assert record.fields == {  # type: ignore[attr-defined]
        "priority": min(base + 5, LOWEST_PRIORITY),
        "reason": "Operation not permitted",
    }


def test_the_server_processes_a_long_chunk_on_a_thread_below_its_event_loop() -> None:
    before = _thread_priorities()
    base = _own_priority()
    server = InProcessServer(Config(worker_nice=5))
    try:
        with server.channel() as channel:
            stub = pb_grpc.StreamingParserStub(channel)
            request = pb.ProcessChunksRequest(chunk_id="long", chunk="x" * OFFLOAD_CHARS)
            [response] = stub.ProcessChunks(iter([request]), timeout=TIMEOUT)
        assert response.delta == request.chunk
        assert server.run(_loop_priority()) == base
        started = [nice for tid, nice in _thread_priorities().items() if tid not in before]
        assert min(base + 5, LOWEST_PRIORITY) in started
    finally:
        server.close()
