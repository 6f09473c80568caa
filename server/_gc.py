"""The garbage collector held off while a worker thread builds a big answer, and big
answers freed a slice at a time.

A megabyte of dense JSON becomes some 200,000 JSON ops: NamedTuples, which the collector
tracks until they are freed (it stops tracking only exact tuples). Their allocation sets
off collection after collection, and each full one walks them all with the GIL held: the
event loop waited 90-300 ms at a time behind a worker (bench/loop_stall.py). None of those
objects is in a reference cycle, so reference counting frees them all the same; holding
cyclic collection off while the answer is built costs nothing and takes the pauses away.

Reference counting has a pause of its own: the last reference to a list of 400,000 ops
frees them all in one C call, 20-50 ms with the GIL held. `free_gradually` frees such a
list in slices, and the interpreter may hand the GIL over between two of them.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Items freed in one go: about 0.3 ms of the GIL for JSON ops.
FREE_SLICE = 4096

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


def free_gradually(owner: object, name: str) -> None:
    """Empty the list `owner.<name>`, a slice at a time, when nothing else holds it: a list
    someone else still reads is left as it is."""
    items = getattr(owner, name)
    # Three references: the attribute, `items` and getrefcount's argument.
    if type(items) is not list or len(items) <= FREE_SLICE or sys.getrefcount(items) > 3:
        return
    while items:
        del items[-FREE_SLICE:]
