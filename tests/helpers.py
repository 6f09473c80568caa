"""Shared test tools: chunkings of a text, JSON documents as an LLM writes them, and an
independent rebuilder for the engine's Set / Append ops.

Expected values never come from the engine: a document's value comes from `json.loads`,
with numbers kept as the literal text they were written as (`Number`), so "numbers carried
as written" is checked too.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from server.engine import Append, End, Set

# --------------------------------------------------------------------------- chunkings


def chunkings(text: str, *, seed: int = 0, random_count: int = 8) -> Iterator[list[str]]:
    """Ways to cut `text` into chunks, in the spirit of h11's `tr()`: the whole text at once,
    one code point at a time, every two-way split, and `random_count` random cuts."""
    yield [text]
    yield list(text)
    for i in range(len(text) + 1):
        yield [text[:i], text[i:]]
    rnd = random.Random(seed)
    for _ in range(random_count):
        yield cut(text, sorted(rnd.sample(range(len(text) + 1), rnd.randint(0, len(text) + 1))))


def check_chunkings(run: Callable[[list[str]], Any], text: str, expected: Any) -> None:
    """`run(chunks)` gives `expected` for every chunking of `text`."""
    for chunks in chunkings(text):
        got = run(chunks)
        assert got == expected, f"chunks={chunks!r}: {got!r} != {expected!r}"


def cut(text: str, positions: Iterable[int]) -> list[str]:
    """`text` cut at the given (sorted) positions; empty pieces are kept on purpose."""
    pieces, start = [], 0
    for p in positions:
        pieces.append(text[start:p])
        start = p
    pieces.append(text[start:])
    return pieces


@st.composite
def chunkings_of(draw: st.DrawFn, text: str) -> list[str]:
    """A hypothesis strategy: `text` cut into pieces (empty pieces included)."""
    positions = draw(st.lists(st.integers(0, len(text)), max_size=max(4, len(text) // 2)))
    if draw(st.booleans()):
        positions = [p for p in positions if p > 0]  # sometimes no empty first piece
    return cut(text, sorted(positions))


def snapshots(chunks: list[str]) -> list[str]:
    """The cumulative texts a SNAPSHOT client sends for these fragments."""
    out, text = [], ""
    for c in chunks:
        text += c
        out.append(text)
    return out


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Number:
    """A JSON number as the literal text it was written as."""

    literal: str


_EXACT = json.JSONDecoder(strict=False, parse_int=Number, parse_float=Number)


def loads_exact(text: str) -> Any:
    """`json.loads` keeping numbers as written and accepting raw control characters in
    strings, as the engine's readers do."""
    return _EXACT.decode(text)


ABSENT = object()
"""The rebuilt value before any op: nothing at all."""


class Rebuilder:
    """Applies Set / Append / End ops to nothing, independently of the engine.

    Paths are RFC 6901 pointers ("" is the root; ~1 is "/", ~0 is "~"). A Set at an array
    index equal to the array's length adds an element; any other array index is refused,
    since the engine never replaces an array element. A Set on an existing object key
    replaces its value in place (a repeated key). End(path) marks a string or container
    complete: nothing may be added to it afterwards. Op text must be valid UTF-8 (no lone
    surrogates), as a proto string must.
    """

    def __init__(self) -> None:
        self._value: Any = ABSENT
        # Appends to one path are joined before they are applied, so that rebuilding a
        # long string costs time linear in its length.
        self._pending_path: str | None = None
        self._pending: list[str] = []
        self._ended: set[str] = set()

    @property
    def value(self) -> Any:
        self._flush()
        return self._value

    def apply(self, ops: Iterable[Any]) -> Rebuilder:
        for op in ops:
            if isinstance(op, Set):
                _utf8(op.json)
                self._flush()
                self._set(op.path, _parse_set(op.json))
            elif isinstance(op, Append):
                _utf8(op.text)
                if op.path != self._pending_path:
                    self._flush()
                    self._pending_path = op.path
                self._pending.append(op.text)
            elif isinstance(op, End):
                self._flush()
                self._end(op.path)
            else:
                raise AssertionError(f"not an op: {op!r}")
        return self

    def _flush(self) -> None:
        if self._pending_path is not None:
            path, text = self._pending_path, "".join(self._pending)
            self._pending_path, self._pending = None, []
            self._append(path, text)

    def _end(self, path: str) -> None:
        if path in self._ended:
            raise AssertionError(f"End {path!r} twice")
        target = self._value if path == "" else _child(*self._parent(path))
        if not isinstance(target, str | list | dict):
            raise AssertionError(f"End {path!r} of {target!r}")
        self._ended.add(path)

    def _set(self, path: str, value: Any) -> None:
        if path in self._ended:  # a repeated key: its earlier value goes, with its marks
            self._ended = {p for p in self._ended if p != path and not p.startswith(path + "/")}
        if path == "":
            if self._value is not ABSENT:
                raise AssertionError("Set at the root twice")
            self._value = value
            return
        if path.rpartition("/")[0] in self._ended:
            raise AssertionError(f"Set {path!r} in a container already ended")
        parent, token = self._parent(path)
        if isinstance(parent, list):
            if token != str(len(parent)):
                raise AssertionError(f"Set {path!r}: array has {len(parent)} elements")
            parent.append(value)
        else:
            parent[token] = value

    def _append(self, path: str, text: str) -> None:
        if path in self._ended:
            raise AssertionError(f"Append {path!r} to a string already ended")
        if path == "":
            if not isinstance(self._value, str):
                raise AssertionError(f"Append at the root of {self._value!r}")
            self._value += text
            return
        parent, token = self._parent(path)
        key: Any = token
        if isinstance(parent, list):
            if not token.isdigit() or int(token) >= len(parent) or str(int(token)) != token:
                raise AssertionError(f"Append {path!r}: no such element")
            key = int(token)
        elif token not in parent:
            raise AssertionError(f"Append {path!r}: no such key")
        if not isinstance(parent[key], str):
            raise AssertionError(f"Append {path!r} to {parent[key]!r}")
        parent[key] += text

    def _parent(self, path: str) -> tuple[Any, str]:
        if not path.startswith("/"):
            raise AssertionError(f"not a JSON pointer: {path!r}")
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]
        node = self._value
        for token in tokens[:-1]:
            if isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            elif isinstance(node, dict) and token in node:
                node = node[token]
            else:
                raise AssertionError(f"{path!r}: no {token!r} in {node!r}")
        if not isinstance(node, list | dict):
            raise AssertionError(f"{path!r}: {node!r} is not a container")
        return node, tokens[-1]


_OPENERS = {"{}": dict, "[]": list, '""': str}


def _parse_set(text: str) -> Any:
    opener = _OPENERS.get(text)
    return opener() if opener else loads_exact(text)


def _child(parent: Any, token: str) -> Any:
    if isinstance(parent, list):
        if token.isdigit() and int(token) < len(parent):
            return parent[int(token)]
    elif token in parent:
        return parent[token]
    raise AssertionError(f"no {token!r} in {parent!r}")


def _utf8(text: str) -> None:
    text.encode("utf-8")  # raises on a lone surrogate


def apply_ops(ops: Iterable[Any]) -> Any:
    """The value that `ops`, applied in order to nothing, build (`ABSENT` if none)."""
    return Rebuilder().apply(ops).value


def extends(old: Any, new: Any) -> bool:
    """`new` only adds to `old`: strings grow, containers gain members, scalars stay."""
    if old is ABSENT:
        return True
    if type(old) is not type(new):
        return False
    if isinstance(old, dict):
        return list(new)[: len(old)] == list(old) and all(extends(old[k], new[k]) for k in old)
    if isinstance(old, list):
        return len(new) >= len(old) and all(extends(a, b) for a, b in zip(old, new, strict=False))
    if isinstance(old, str):
        return new.startswith(old)
    return old == new


def shown(ops: Iterable[Any]) -> list[Any]:
    """The ops a client sees: Set and Append (End marks stay inside the engine)."""
    return [op for op in ops if not isinstance(op, End)]


def normalized(ops: Iterable[Any]) -> list[Any]:
    """Ops with adjacent Appends to one path merged and empty Appends dropped: what every
    chunking of one text must give alike."""
    out: list[Any] = []
    for op in ops:
        if isinstance(op, Append):
            if not op.text:
                continue
            if out and isinstance(out[-1], Append) and out[-1].path == op.path:
                out[-1] = Append(op.path, out[-1].text + op.text)
                continue
        out.append(op)
    return out


def snapshot(value: Any) -> Any:
    return value if value is ABSENT else copy.deepcopy(value)


# --------------------------------------------------------------------------- documents

WHITESPACE = ["", "", "", " ", "\n", "\t", "\r\n", "  \n  "]
TRICKY_CHARS = '"\\/\b\f\n\r\t\x00\x1f\x7féü€\u2028😀🎉\U0010ffff'

strings = st.text(alphabet=st.characters() | st.sampled_from(TRICKY_CHARS), max_size=24)

NUMBER_LITERALS = r"-?(0|[1-9][0-9]{0,44})(\.[0-9]{1,12})?([eE][+-]?[0-9]{1,3})?"
numbers = st.builds(
    Number,
    st.from_regex(NUMBER_LITERALS, fullmatch=True)
    | st.sampled_from(["-0", "0", "1e-7", "1E+30", "0.5", "-0.0", "1" * 45, "-" + "9" * 41]),
)

scalars = st.none() | st.booleans() | numbers | strings


def _containers(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4)


@st.composite
def json_values(draw: st.DrawFn, *, max_wrap: int = 18) -> Any:
    """Any JSON value (numbers as `Number`), nested up to about 20 deep."""
    value = draw(st.recursive(scalars, _containers, max_leaves=12))
    for _ in range(draw(st.integers(0, 3) | st.sampled_from(range(6, max_wrap + 1, 3)))):
        if draw(st.booleans()):
            value = [value]
        else:
            value = {draw(strings): value}
    return value


@dataclass(frozen=True)
class Style:
    """How a document is written; one per document."""

    rnd: random.Random
    ensure_ascii: bool = False
    raw_controls: bool = False

    def ws(self) -> str:
        return self.rnd.choice(WHITESPACE)


def encode_string(s: str, style: Style) -> str:
    """A JSON string literal for `s`, with escapes chosen at random where allowed. A
    surrogate code point in `s` (lone, or one half of a pair written as two) is always
    escaped: JSON text itself is UTF-8."""
    rnd = style.rnd
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20:
            short = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
            if style.raw_controls and rnd.random() < 0.6:
                out.append(ch)
            elif ch in short and rnd.random() < 0.5:
                out.append(short[ch])
            else:
                out.append(_u_escape(code, rnd))
        elif (
            (code > 0x7E and style.ensure_ascii) or 0xD800 <= code <= 0xDFFF or rnd.random() < 0.05
        ):
            out.append(_u_escape(code, rnd) if code <= 0xFFFF else _pair_escape(code, rnd))
        elif ch == "/" and rnd.random() < 0.5:
            out.append("\\/")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _pair_escape(code: int, rnd: random.Random) -> str:
    high = 0xD800 + ((code - 0x10000) >> 10)
    low = 0xDC00 + ((code - 0x10000) & 0x3FF)
    return _u_escape(high, rnd) + _u_escape(low, rnd)


def _u_escape(code: int, rnd: random.Random) -> str:
    digits = f"{code:04x}"
    return "\\u" + (digits.upper() if rnd.random() < 0.3 else digits)


def serialize(value: Any, style: Style) -> str:
    """`value` as JSON text with random whitespace between tokens."""
    ws = style.ws
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Number):
        return value.literal
    if isinstance(value, str):
        return encode_string(value, style)
    if isinstance(value, list):
        if not value:
            return "[" + ws() + "]"
        items = (ws() + serialize(v, style) + ws() for v in value)
        return "[" + ",".join(items) + "]"
    if not value:
        return "{" + ws() + "}"
    members = (
        ws() + encode_string(k, style) + ws() + ":" + ws() + serialize(v, style) + ws()
        for k, v in value.items()
    )
    return "{" + ",".join(members) + "}"


@dataclass(frozen=True)
class Document:
    """A JSON text as an LLM may write it, and the JSON inside it."""

    text: str
    body: str

    @property
    def value(self) -> Any:
        return decode(self.body)


def decode(body: str) -> Any:
    """What the engine must read from a JSON text: `loads_exact`, with each lone surrogate
    escape as U+FFFD (json.loads keeps them; a proto string cannot hold them)."""
    return without_lone_surrogates(loads_exact(body))


def without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, list):
        return [without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()}
    return value


@st.composite
def documents(draw: st.DrawFn, values: st.SearchStrategy | None = None) -> Document:
    """JSON texts: random whitespace, sometimes ASCII-only escapes, sometimes raw control
    characters in strings, sometimes inside a ```json fence."""
    value = draw(values if values is not None else json_values())
    style = Style(
        rnd=draw(st.randoms(use_true_random=True)),
        ensure_ascii=draw(st.booleans()),
        raw_controls=draw(st.booleans()),
    )
    body = serialize(value, style)
    text = style.ws() + body + style.ws()
    if draw(st.integers(0, 3)) == 0:
        text = "```json\n" + style.ws() + body + style.ws() + "\n```" + style.rnd.choice(["", "\n"])
    return Document(text, body)
