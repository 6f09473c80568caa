"""Which asyncio event loop a process runs on: uvloop where it is installed, else asyncio's.

grpc.aio spends most of each message's time in event-loop machinery (futures, callbacks,
the poller's wake-ups), and uvloop does that machinery in C. At 1,000 streams × 3 msgs/s
the server's CPU per message fell by 0.02–0.03 ms with it, about a tenth, for the echo
ceiling and the service alike (bench/RESULTS.md). uvloop is a dependency wherever it
builds; elsewhere `auto` falls back to asyncio's own loop, which behaves the same, only
slower.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

EVENT_LOOPS = ("auto", "uvloop", "asyncio")

_T = TypeVar("_T")


class EventLoopError(Exception):
    """The event loop asked for cannot be had here."""


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop of kind `name` (one of EVENT_LOOPS)."""
    if name not in EVENT_LOOPS:
        raise EventLoopError(f"unknown event loop {name!r}; pick one of {', '.join(EVENT_LOOPS)}")
    if name == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as error:
        if name == "uvloop":
            raise EventLoopError(
                "event loop 'uvloop' asked for, but uvloop is not installed"
            ) from error
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(main: Callable[[], Coroutine[Any, Any, _T]], name: str = "auto") -> _T:
    """asyncio.run(main()) on a loop of kind `name`.

    Takes the coroutine function rather than a coroutine, so that an unavailable loop is
    refused before a coroutine exists that would never be awaited.
    """
    factory = loop_factory(name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def running_loop_kind() -> str:
    """'uvloop' or 'asyncio': what the running loop is, for logs and reports."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
