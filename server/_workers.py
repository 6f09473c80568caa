"""The thread pool engine work goes to, its threads at a lower scheduling priority than the
event loop's.

A megabyte of dense JSON is about a second of engine work on one of these threads. Where it
shares a CPU with the event loop, the two take turns at the operating system scheduler's
pace, and the scheduler lets a busy thread finish its time slice before a woken one runs: a
small stream's message woke the loop, which waited up to a few milliseconds for the CPU, and
again for each hand-over of the GIL, before it could answer. Niced workers give way to the
loop as soon as it wakes (bench/RESULTS.md, "Workers below the event loop").

Only Linux sets a priority per thread; elsewhere the workers keep the process's.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from server._logging import get_logger, log_event

_log = get_logger("workers")

#: Linux's highest nice value, its lowest priority.
LOWEST_PRIORITY = 19


def engine_executor(threads: int, nice: int) -> ThreadPoolExecutor:
    """A pool of `threads` threads, each running `nice` steps below the thread that makes
    it, down to LOWEST_PRIORITY at most."""
    priority = None
    if nice and sys.platform == "linux":
        priority = min(_priority() + nice, LOWEST_PRIORITY)
    return ThreadPoolExecutor(
        threads,
        thread_name_prefix="chunkwise-engine",
        initializer=_lower_priority,
        initargs=(priority,),
    )


def _priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _lower_priority(priority: int | None) -> None:
    if priority is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), priority)
    except OSError as error:
        # An initializer that raises breaks the whole pool: a worker that cannot be niced
        # works at the loop's priority instead.
        log_event(
            _log,
            logging.WARNING,
            "worker priority not lowered",
            priority=priority,
            reason=error.strerror or str(error),
        )
