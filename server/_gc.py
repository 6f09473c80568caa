"""The garbage collector held off while a worker thread builds a big answer.

A megabyte of dense JSON becomes some 200,000 JSON ops: NamedTuples, which the collector
tracks until they are freed (it stops tracking only exact tuples). Their allocation sets
off collection after collection, and each full one walks them all with the GIL held: the
event loop waited 90-300 ms at a time behind a worker (bench/loop_stall.py). None of those
objects is in a reference cycle, so reference counting frees them all the same; holding
cyclic collection off while the answer is built costs nothing and takes the pauses away.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_was_enabled = True


@contextmanager
def collection_held_off() -> Iterator[None]:
    """Cyclic collection is off from the first holder's entry to the last one's exit."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
