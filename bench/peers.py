"""The other ways to read a JSON value that arrives in chunks, behind one interface.

A peer is made fresh for each run and fed the same chunks as the engine: `feed(chunk)` per
chunk, `close()` at the end. Re-parsing peers keep the prefix and parse all of it on every
chunk, as the original chat backend did; incremental peers keep parser state.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol


class Peer(Protocol):
    def feed(self, chunk: str) -> Any: ...

    def close(self) -> Any: ...


# One match is a whole string (its escapes included, its closing quote if it has one yet)
# or one bracket. The regex engine skips string contents in C, so the scan costs about what
# the original's compiled char loop did, not what a Python char loop would.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*("?)|[{}\[\]]', re.DOTALL)
_CLOSER = {"{": "}", "[": "]"}


def close_partial_json(buffer: str) -> str:
    """The original algorithm's repair step, as it was: walk the whole buffer to learn
    whether it ends inside a string and which brackets are open, then close them.

    It scans from the start every time (that is the cost being measured) and knows nothing
    of escapes beyond skipping the escaped character, so a trailing backslash, a partial
    \\u escape, a partial key, a trailing comma or a partial literal all stay broken."""
    in_string = False
    stack: list[str] = []
    for match in _TOKEN.finditer(buffer):
        token = match.group()
        if token[0] == '"':
            in_string = not match.group(1)  # no closing quote: the buffer ends inside it
        elif token in _CLOSER:
            stack.append(_CLOSER[token])
        elif stack:
            stack.pop()
    closing = '"' if in_string else ""
    return buffer + closing + "".join(reversed(stack))


class _Reparser:
    """Keeps the whole prefix and parses all of it on every chunk; subclasses say how."""

    name: str

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, chunk: str) -> Any:
        self._buffer += chunk
        return self.parse_prefix(self._buffer)

    @staticmethod
    def parse_prefix(prefix: str) -> Any:
        raise NotImplementedError

    def close(self) -> Any:
        return json.loads(self._buffer)


class OriginalReparser(_Reparser):
    """Close the open string and brackets on the whole buffer, then `json.loads` it."""

    name = "original (close + json.loads)"

    @staticmethod
    def parse_prefix(prefix: str) -> Any:
        try:
            return json.loads(close_partial_json(prefix))
        except ValueError:
            return None  # the original kept its previous output on a parse failure


class JiterReparser(_Reparser):
    """`jiter.from_json(prefix, partial_mode="trailing-strings")` on every chunk."""

    name = "jiter re-parse"

    @staticmethod
    def parse_prefix(prefix: str) -> Any:
        import jiter

        try:
            return jiter.from_json(prefix.encode(), partial_mode="trailing-strings")
        except ValueError:
            return None  # a prefix jiter cannot read yet, e.g. one ending inside an escape

    def close(self) -> Any:
        import jiter

        return jiter.from_json(self._buffer.encode())


class PartialJsonParserReparser(_Reparser):
    """`partial_json_parser.loads(prefix)` on every chunk."""

    name = "partial_json_parser re-parse"

    @staticmethod
    def parse_prefix(prefix: str) -> Any:
        import partial_json_parser

        try:
            return partial_json_parser.loads(prefix)
        except Exception:  # it raises its own error types, and ValueError, on some prefixes
            return None


class IjsonPeer:
    """ijson's C backend (yajl2_c) through its push (coroutine) interface."""

    name = "ijson (yajl2_c, push)"

    def __init__(self) -> None:
        import ijson

        backend = ijson.get_backend("yajl2_c")
        self._events = ijson.sendable_list()
        self._coro = backend.parse_coro(self._events)

    def feed(self, chunk: str) -> Any:
        self._coro.send(chunk.encode())
        events = list(self._events)
        self._events.clear()
        return events

    def close(self) -> Any:
        self._coro.close()
        return list(self._events)


REPARSERS = (OriginalReparser, JiterReparser, PartialJsonParserReparser)


def time_push_peer(
    make_peer: Callable[[], Peer],
    chunks: list[str],
    batch: int,
    *,
    budget_s: float = float("inf"),
) -> tuple[list[float], float | None]:
    """Feeds the chunks to a fresh peer; returns the seconds of each batch of `batch`
    chunks and the seconds of `close()`. Stops after the first batch that ends past
    `budget_s` (close time None then): a peer whose cost grows with the text can take
    hours, and its first batches already say how it compares."""
    peer = make_peer()
    perf = time.perf_counter
    batches: list[float] = []
    spent = 0.0
    for start in range(0, len(chunks), batch):
        if spent > budget_s:
            return batches, None
        piece = chunks[start : start + batch]
        t0 = perf()
        for chunk in piece:
            peer.feed(chunk)
        batches.append(perf() - t0)
        spent += batches[-1]
    t0 = perf()
    peer.close()
    return batches, perf() - t0


class _OverBudget(Exception):
    pass


def time_jsonriver(
    chunks: list[str], batch: int, *, budget_s: float = float("inf")
) -> tuple[list[float], float | None]:
    """jsonriver pulls chunks from an async iterator and yields ever more complete values.
    The time between two pulls is its parsing time, so batches are timed at the pulls.
    Stops past `budget_s` as `time_push_peer` does."""
    import jsonriver

    perf = time.perf_counter
    batches: list[float] = []
    marks = {"t0": 0.0}

    async def source() -> AsyncIterator[str]:
        for start in range(0, len(chunks), batch):
            if start:
                batches.append(perf() - marks["t0"])
                if sum(batches) > budget_s:
                    raise _OverBudget
            marks["t0"] = perf()
            for chunk in chunks[start : start + batch]:
                yield chunk
        batches.append(perf() - marks["t0"])
        marks["t0"] = perf()

    async def drain() -> None:
        async for _ in jsonriver.parse(source()):
            pass

    try:
        asyncio.run(drain())
    except _OverBudget:
        return batches, None
    return batches, perf() - marks["t0"]


def available() -> dict[str, str]:
    """Each peer library and whether it imports ("ok" or the error)."""
    status: dict[str, str] = {}
    for module in ("jiter", "partial_json_parser", "ijson", "jsonriver"):
        try:
            imported = __import__(module)
            if module == "ijson":
                imported.get_backend("yajl2_c")
            status[module] = "ok " + str(getattr(imported, "__version__", ""))
        except Exception as exc:  # an import can fail in many ways; all mean "not available"
            status[module] = f"unavailable: {type(exc).__name__}: {exc}"
    return status
