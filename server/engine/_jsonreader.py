"""An incremental reader for one JSON value fed in pieces.

Theory of operation
-------------------
The goal: the cost of ``feed(text)`` grows with ``len(text)`` and the ops it emits, never
with the text fed before. The plan: never look at a character twice. The reader keeps only
what it needs to go on:

* the state of the token in progress (inside a string, a key, a number, a literal, between
  tokens, before or after the value);
* a stack of open containers, each with its RFC 6901 pointer and, for an array, the index of
  its current element;
* ``_pending``: the few characters that cannot be judged yet, at most a dozen: a trailing
  ``\\``, a partial ``\\u00``, a high surrogate escape waiting for its low half, a partial
  literal or fence. They are put back in front of the next piece.

A key is collected whole before it is used (it becomes part of a path); a number is
collected until a character ends it, because ``12`` may still become ``123``. Everything else
is emitted as soon as it is certain, so nothing emitted is ever taken back: a string's text is
emitted as it arrives (decoded, up to any unfinished escape), a container when it opens.

Runs of string content are decoded by the json module's C ``scanstring``; the Python loop
runs once per token, not once per character.

Offsets in errors count code points of all text fed, from 0, and name the first character
that cannot be there: the longest valid prefix has that length. "unexpected end of JSON at
offset N" comes from ``close()`` when the value is unfinished.

Bounds
------
Every op carries its full path, so paths are what a hostile text would inflate: a long key
under every one of many values, or deep nesting under many small values. Two limits keep
what the reader holds and emits in proportion to the text that carries it:

* A path is at most ``max_path_chars`` code points (MAX_PATH_CHARS). A key that would make
  one longer fails at its opening quote, before the path is built; an array element whose
  index would, at its first character. The stack then holds at most
  ``max_depth * max_path_chars`` characters of paths, whatever the keys.
* The paths of all ops one ``feed(text)`` (or ``close()``) emits total at most
  ``path_budget_per_char * len(text) + path_budget_base`` code points; the op that would
  pass that fails at its offset, before it is appended. The base lets a single feed open
  every allowed level: 512 nested ``[`` emit paths of 261,632 characters. So ops carry at
  most a constant times the text fed, plus that base, and so do the paths of the
  containers a feed opens (each is emitted with its Set). A feed makes at most one op a
  character, and one more; a feed too short to pass its budget even so (under 128
  characters by default, the usual case) is not metered, and a longer one costs one
  subtraction an op.

``held_bytes`` is an upper estimate of the memory the reader holds beyond its fixed size,
kept up to date where frames are pushed and popped and key parts collected, so reading it
is O(1); ``recount_held_bytes()`` computes the same figure from scratch.

Leniency, all of it deliberate (an LLM writes these): leading whitespace, one leading
Markdown fence (```` ``` ```` or ```` ```json ````) with a closing one after the value, raw
control characters inside strings; a lone surrogate escape decodes to U+FFFD. Otherwise
strict RFC 8259.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from json.decoder import JSONDecodeError
from typing import TYPE_CHECKING, Any, cast

from ._errors import InvalidArgument
from ._outputs import Append, End, JsonOp, Set

if TYPE_CHECKING:
    # json.decoder.scanstring is _json's (C) scanstring; typeshed declares it only there.
    from _json import scanstring
else:
    from json.decoder import scanstring

# Both match the empty string, so their match() never returns None: typed so, and bound
# here once.
_match_whitespace = cast("Callable[[str, int], re.Match[str]]", re.compile(r"[ \t\n\r]*").match)
_SPACE = frozenset(" \t\n\r")
_match_digits = cast("Callable[[str, int], re.Match[str]]", re.compile(r"[0-9]*").match)
_SURROGATE = re.compile("[\ud800-\udfff]")
_HEX = frozenset("0123456789abcdefABCDEF")
_HIGH_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}")
_WHOLE_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

# Reader states.
_START = 0  # before the value: whitespace, maybe a fence
_VALUE = 1  # a value at self._path is next
_STRING = 2  # inside a string value
_KEY = 3  # inside an object key
_NUMBER = 4
_LITERAL = 5  # inside true / false / null
_COLON = 6  # after a key
_FIRST_KEY = 7  # after "{": a key or "}"
_NEXT_KEY = 8  # after "," in an object: a key
_FIRST_ITEM = 9  # after "[": a value or "]"
_AFTER_ITEM = 10  # after a value in a container: "," or the closer
_TRAILER = 11  # after the top-level value: whitespace, maybe the closing fence
_FENCE_CLOSED = 12  # after the closing fence: whitespace only

# Number automaton: state -> {character: next state}. _N_ACCEPT are the states in which
# the number may end.
_N_START, _N_MINUS, _N_ZERO, _N_INT, _N_DOT, _N_FRAC, _N_E, _N_ESIGN, _N_EXP = range(9)
_D = "0123456789"
_NUMBER_MOVES: list[dict[str, int]] = [
    {"-": _N_MINUS, "0": _N_ZERO, **{d: _N_INT for d in _D[1:]}},
    {"0": _N_ZERO, **{d: _N_INT for d in _D[1:]}},
    {".": _N_DOT, "e": _N_E, "E": _N_E},
    {**{d: _N_INT for d in _D}, ".": _N_DOT, "e": _N_E, "E": _N_E},
    {d: _N_FRAC for d in _D},
    {**{d: _N_FRAC for d in _D}, "e": _N_E, "E": _N_E},
    {"+": _N_ESIGN, "-": _N_ESIGN, **{d: _N_EXP for d in _D}},
    {d: _N_EXP for d in _D},
    {d: _N_EXP for d in _D},
]
_N_DIGIT_RUNS = frozenset({_N_INT, _N_FRAC, _N_EXP})
_N_ACCEPT = frozenset({_N_ZERO, _N_INT, _N_FRAC, _N_EXP})
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_LITERALS = {"t": "true", "f": "false", "n": "null"}

MAX_PATH_CHARS = 4096
PATH_BUDGET_PER_CHAR = 8
PATH_BUDGET_BASE = 512 * 1024

# Sizes for held_bytes, upper estimates of what tracemalloc counts on CPython 3.11: a str
# is at most 76 bytes plus 4 a code point; a stack frame is a 3-item list and its index int;
# a list slot is 8 bytes, doubled for the list's over-allocation; a dict entry of two ints
# with its share of the table.
STR_BYTES = 80
CHAR_BYTES = 4
_FRAME_BYTES = 128
_SLOT_BYTES = 16
_ENTRY_BYTES = 128
_FRAME_FIXED_BYTES = _FRAME_BYTES + STR_BYTES  # a frame and its path's str, but its characters
_PART_BYTES = _SLOT_BYTES + STR_BYTES
# Texts longer than this have their brackets and quotes counted for growth_bound; a
# shorter one's bound depends on its length alone, and is looked up, once a chunk, in a
# table shared by the readers of the same settings.
_COUNTED_FROM = 256
_SHORT_BOUNDS: dict[tuple[object, ...], list[int]] = {}
# The error a reader keeps once the text cannot be read: the exception, its dict and its
# message of a few dozen characters (its traceback is dropped: see the parser).
_ERROR_BYTES = 640


def bytearray_bytes(size: int) -> int:
    """An upper estimate of the buffer of a bytearray of `size` bytes grown by appends:
    it over-allocates by an eighth and a few bytes."""
    return size + (size >> 3) + 32


# Ops are built as `_new(Set, (path, json))`: a NamedTuple's own constructor is a Python
# function and costs twice as much, and a chunk makes a few ops.
_new = tuple.__new__


def _describe(char: str) -> str:
    if char == "'":
        return '"\'"'
    if char.isprintable():
        return f"'{char}'"
    return f"U+{ord(char):04X}"


def escape_pointer_token(key: str) -> str:
    """One RFC 6901 reference token."""
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


class JsonReader:
    """Reads one JSON value fed in pieces; emits Set / Append / End ops as they become
    certain (see ``_outputs``).

    ``feed("")`` does nothing. After an error, every call raises that error again. With
    ``ends=False`` no End op is emitted, for a reader of the ops that does not need them.
    With ``string_starts=True``, after each ``feed()`` the dict ``string_starts`` maps the
    index in its ops of each Set that opened a string to the offset of its opening quote.
    """

    def __init__(
        self,
        *,
        max_depth: int = 512,
        ends: bool = True,
        max_path_chars: int = MAX_PATH_CHARS,
        path_budget_per_char: int = PATH_BUDGET_PER_CHAR,
        path_budget_base: int = PATH_BUDGET_BASE,
        string_starts: bool = False,
    ) -> None:
        self._max_depth = max_depth
        self._ends = ends
        self._max_path_chars = max_path_chars
        self._budget_per_char = path_budget_per_char
        self._budget_base = path_budget_base
        # A feed of at most this many characters (pending ones included) cannot pass its
        # budget: it makes at most one op a character and one more, each with a path of at
        # most max_path_chars. Only a longer one is metered, op by op.
        self._unmetered_chars = path_budget_base // max_path_chars - 1
        self._metered = False
        self._budget = self._path_room = 0  # path characters this feed may emit, and left
        self.string_starts: dict[int, int] | None = {} if string_starts else None
        settings = (
            max_depth,
            max_path_chars,
            path_budget_per_char,
            path_budget_base,
            string_starts,
        )
        short_bounds = _SHORT_BOUNDS.get(settings)
        if short_bounds is None:
            short_bounds = [self._bound(n, n + 1, n + 1) for n in range(_COUNTED_FROM + 1)]
            _SHORT_BOUNDS[settings] = short_bounds
        self._short_bounds = short_bounds
        self._state = _START
        self._pending = ""
        self._base = 0  # offset of the first character of the next feed's data
        # Frames are [is_array, pointer, index]: a bool, a str and an int in a list, changed
        # in place; a list's items have one type, so Any.
        self._stack: list[list[Any]] = []
        self._stack_chars = 0  # of all the stack's paths
        self._path = ""  # where the next value goes
        self._parts: list[str] = []  # a key's text so far
        self._parts_chars = 0
        self._key_start = 0
        self._number = bytearray()  # a number's characters so far
        self._number_state = _N_START
        self._literal = ""
        self._literal_matched = 0
        self._fenced = False
        self._value_start = -1
        self._value_end = -1
        self._error: InvalidArgument | None = None

    @property
    def value_span(self) -> tuple[int, int] | None:
        """(start, end) offsets of the top-level value once it is complete."""
        if self._value_end < 0:
            return None
        return self._value_start, self._value_end

    @property
    def held_bytes(self) -> int:
        """An upper estimate of the memory held beyond the reader's fixed size; O(1)."""
        held = STR_BYTES + _FRAME_FIXED_BYTES * len(self._stack)  # STR_BYTES: the path
        held += CHAR_BYTES * (self._stack_chars + len(self._path))
        if self._pending:
            held += STR_BYTES + CHAR_BYTES * len(self._pending)
        if self._parts:
            held += _PART_BYTES * len(self._parts) + CHAR_BYTES * self._parts_chars
        if self._number:
            held += bytearray_bytes(len(self._number))
        if self.string_starts:
            held += _ENTRY_BYTES * len(self.string_starts)
        if self._error is not None:
            held += _ERROR_BYTES
        return held

    def growth_bound(self, text: str) -> int:
        """The most `held_bytes` can grow by when `text` is fed (and the reader closed):
        new frames, one for each '{' or '[', whose paths fit the feed's path budget, and at
        most the deepest stack; the current path; a key or number in progress; the pending
        few characters; the string starts, one for each '"'; all at their estimated sizes.
        The brackets and quotes of a long text are counted (in C); a short one is taken to
        be all of them."""
        chars = len(text)
        if chars > _COUNTED_FROM:
            return self._bound(chars, text.count("{") + text.count("[") + 1, text.count('"') + 1)
        return self._short_bounds[chars]

    def _bound(self, chars: int, opens: int, quotes: int) -> int:
        frame = _FRAME_FIXED_BYTES + CHAR_BYTES * self._max_path_chars
        frames = min(
            _FRAME_FIXED_BYTES * opens
            + CHAR_BYTES * (self._budget_per_char * chars + self._budget_base),
            opens * frame,
            self._max_depth * frame,
        )
        bound = frames + CHAR_BYTES * self._max_path_chars + 2 * STR_BYTES + CHAR_BYTES * 16
        bound += _PART_BYTES + CHAR_BYTES * chars + bytearray_bytes(chars) + _ERROR_BYTES
        if self.string_starts is not None:
            bound += _ENTRY_BYTES * quotes
        return bound

    def recount_held_bytes(self) -> int:
        """`held_bytes` computed from scratch."""
        held = STR_BYTES + CHAR_BYTES * len(self._path)
        held += sum(_FRAME_FIXED_BYTES + CHAR_BYTES * len(f[1]) for f in self._stack)
        if self._pending:
            held += STR_BYTES + CHAR_BYTES * len(self._pending)
        held += sum(_PART_BYTES + CHAR_BYTES * len(p) for p in self._parts)
        if self._number:
            held += bytearray_bytes(len(self._number))
        held += _ENTRY_BYTES * len(self.string_starts or ())
        if self._error is not None:
            held += _ERROR_BYTES
        return held

    def feed(self, text: str) -> list[JsonOp]:
        """Read the next piece. Raises InvalidArgument for text that cannot become JSON."""
        if self._error is not None:
            raise self._error
        data = self._pending + text if self._pending else text
        self._metered = metered = len(data) > self._unmetered_chars
        if metered:
            self._budget = self._path_room = self._budget_per_char * len(text) + self._budget_base
        if self.string_starts:
            self.string_starts.clear()
        ops: list[JsonOp] = []
        try:
            stop = self._run(data, ops)
        except InvalidArgument as exc:
            self._error = exc
            raise
        self._pending = data[stop:]
        self._base += stop
        return ops

    def close(self) -> list[JsonOp]:
        """The text is complete: a top-level number ends here. Raises InvalidArgument
        ("unexpected end of JSON at offset N") when the value is unfinished."""
        if self._error is not None:
            raise self._error
        self._metered = True
        self._budget = self._path_room = self._budget_base
        ops: list[JsonOp] = []
        if self._state == _NUMBER and not self._stack and self._number_state in _N_ACCEPT:
            self._end_number(ops, self._base)
        if self._state not in (_TRAILER, _FENCE_CLOSED) or self._pending:
            self._error = InvalidArgument(
                f"unexpected end of JSON at offset {self._base + len(self._pending)}"
            )
            raise self._error
        return ops

    # -- the state machine ---------------------------------------------------------------

    def _fail(self, what: str, offset: int) -> InvalidArgument:
        return InvalidArgument(f"invalid JSON: {what} at offset {offset}")

    def _path_too_long(self, offset: int) -> InvalidArgument:
        return self._fail(f"path longer than {self._max_path_chars} characters", offset)

    def _over_budget(self, offset: int) -> InvalidArgument:
        return InvalidArgument(
            f"JSON paths of one chunk would pass {self._budget} characters at offset {offset}"
        )

    def _run(self, data: str, ops: list[JsonOp]) -> int:
        """Consume `data`; returns where the unjudged rest (kept for the next feed) starts."""
        n = len(data)
        i = 0
        base = self._base
        while i < n:
            state = self._state
            if state == _STRING or state == _KEY:
                i = self._read_string(data, i, ops)
                if i < 0:
                    return ~i
                continue
            if state == _NUMBER:
                i = self._read_number(data, i, ops)
                continue
            if state == _LITERAL:
                i = self._read_literal(data, i, ops)
                continue
            char = data[i]
            if char in _SPACE:
                # Mostly one space, after a ':' or ','; the regex is for longer runs.
                i += 1
                if i < n and data[i] in _SPACE:
                    i = _match_whitespace(data, i).end()
                if i == n:
                    break
                char = data[i]
            if state == _VALUE:
                i = self._start_value(data, i, ops)
            elif state == _AFTER_ITEM:
                frame = self._stack[-1]
                if char == ",":
                    if frame[0]:
                        frame[2] += 1
                        self._path = f"{frame[1]}/{frame[2]}"
                        self._state = _VALUE
                    else:
                        self._state = _NEXT_KEY
                    i += 1
                elif char == ("]" if frame[0] else "}"):
                    i = self._close_container(i, ops)
                else:
                    closer = "']'" if frame[0] else "'}'"
                    raise self._fail(f"expected ',' or {closer}, found {_describe(char)}", base + i)
            elif state == _COLON:
                if char != ":":
                    raise self._fail(f"expected ':' after a key, found {_describe(char)}", base + i)
                self._state = _VALUE
                i += 1
            elif state == _FIRST_KEY or state == _NEXT_KEY:
                if char == '"':
                    key = _whole_string(data, i + 1)
                    if key is None:
                        self._parts = []
                        self._parts_chars = 0
                        self._key_start = base + i
                        self._state = _KEY
                        i += 1
                    else:
                        parent = self._stack[-1][1]
                        token = escape_pointer_token(key[0])
                        if len(parent) + len(token) >= self._max_path_chars:
                            raise self._path_too_long(base + i)
                        self._path = f"{parent}/{token}"
                        i = key[1]
                        # The colon mostly follows at once: one turn of the loop fewer.
                        if i < n and data[i] == ":":
                            self._state = _VALUE
                            i += 1
                        else:
                            self._state = _COLON
                elif char == "}" and state == _FIRST_KEY:
                    i = self._close_container(i, ops)
                else:
                    raise self._fail(f"expected a key in quotes, found {_describe(char)}", base + i)
            elif state == _FIRST_ITEM:
                if char == "]":
                    i = self._close_container(i, ops)
                else:
                    self._path = self._stack[-1][1] + "/0"
                    self._state = _VALUE
            elif state == _START:
                if char == "`":
                    i = self._read_fence(data, i, opening=True)
                    if i < 0:
                        return ~i
                self._state = _VALUE
            elif state == _TRAILER:
                if char == "`" and self._fenced:
                    i = self._read_fence(data, i, opening=False)
                    if i < 0:
                        return ~i
                    self._state = _FENCE_CLOSED
                else:
                    raise self._fail(f"unexpected {_describe(char)} after the value", base + i)
            else:  # _FENCE_CLOSED
                raise self._fail(f"unexpected {_describe(char)} after the closing fence", base + i)
        return n

    def _start_value(self, data: str, i: int, ops: list[JsonOp]) -> int:
        char = data[i]
        path = self._path
        if len(path) > self._max_path_chars:
            raise self._path_too_long(self._base + i)
        metered = self._metered
        if not self._stack and self._value_start < 0:
            self._value_start = self._base + i
        if char == '"':
            if metered:
                self._spend(path, self._base + i)
            if self.string_starts is not None:
                self.string_starts[len(ops)] = self._base + i
            ops.append(_new(Set, (path, '""')))
            whole = _whole_string(data, i + 1)
            if whole is None:
                self._state = _STRING
                return i + 1
            if whole[0]:
                if metered:
                    self._spend(path, self._base + i + 1)
                ops.append(_new(Append, (path, whole[0])))
            if self._ends:
                if metered:
                    self._spend(path, self._base + whole[1] - 1)
                ops.append(_new(End, (path,)))
            self._value_done(self._base + whole[1])
            return whole[1]
        if char == "{" or char == "[":
            if len(self._stack) >= self._max_depth:
                raise InvalidArgument(
                    f"invalid JSON: nesting deeper than {self._max_depth} "
                    f"at offset {self._base + i}"
                )
            is_array = char == "["
            if metered:
                self._spend(path, self._base + i)
            ops.append(_new(Set, (path, "[]" if is_array else "{}")))
            self._stack.append([is_array, path, 0])
            self._stack_chars += len(path)
            self._state = _FIRST_ITEM if is_array else _FIRST_KEY
            return i + 1
        if char in _NUMBER_CHARS and char not in "+.eE":
            number = _WHOLE_NUMBER.match(data, i)
            end = number.end() if number else i
            if end > i and end < len(data) and data[end] not in _NUMBER_CHARS:
                if metered:
                    self._spend(path, self._base + i)
                ops.append(_new(Set, (path, data[i:end])))
                self._value_done(self._base + end)
                return end
            self._number_state = _N_START
            self._state = _NUMBER
            return i
        literal = _LITERALS.get(char)
        if literal is not None and data.startswith(literal, i):
            end = i + len(literal)
            if metered:
                self._spend(path, self._base + i)
            ops.append(_new(Set, (path, literal)))
            self._value_done(self._base + end)
            return end
        if literal is not None:
            self._literal = literal
            self._literal_matched = 0
            self._state = _LITERAL
            return i
        raise self._fail(f"expected a value, found {_describe(char)}", self._base + i)

    def _spend(self, path: str, offset: int) -> None:
        """Charge the path budget for one op at `path`, emitted at `offset`."""
        room = self._path_room - len(path)
        if room < 0:
            raise self._over_budget(offset)
        self._path_room = room

    def _value_done(self, end: int) -> None:
        if self._stack:
            self._state = _AFTER_ITEM
        else:
            self._state = _TRAILER
            self._value_end = end

    def _close_container(self, i: int, ops: list[JsonOp]) -> int:
        path = self._stack.pop()[1]
        self._stack_chars -= len(path)
        if self._ends:
            if self._metered:
                self._spend(path, self._base + i)
            ops.append(_new(End, (path,)))
        self._value_done(self._base + i + 1)
        return i + 1

    def _read_string(self, data: str, i: int, ops: list[JsonOp]) -> int:
        """Read string content from i. Returns the index after the closing quote, or
        ~index of the unfinished escape that must wait for more text."""
        n = len(data)
        close = closing_quote(data, i)
        stop = close if close >= 0 else _decodable_end(data, i, n)
        if stop > i:
            text = self._decode(data, i, stop)
            if text:
                if self._state == _STRING:
                    if self._metered:
                        self._spend(self._path, self._base + i)
                    ops.append(_new(Append, (self._path, text)))
                else:
                    # Escaping only lengthens a key: one already too long unescaped fails
                    # here, so its parts never hold more than a path's worth of text.
                    chars = self._parts_chars + len(text)
                    if len(self._stack[-1][1]) + chars >= self._max_path_chars:
                        raise self._path_too_long(self._key_start)
                    self._parts.append(text)
                    self._parts_chars = chars
        if close < 0:
            return ~stop if stop < n else n
        if self._state == _STRING:
            if self._ends:
                if self._metered:
                    self._spend(self._path, self._base + close)
                ops.append(_new(End, (self._path,)))
            self._value_done(self._base + close + 1)
        else:
            token = escape_pointer_token("".join(self._parts))
            self._parts = []
            self._parts_chars = 0
            parent = self._stack[-1][1]
            if len(parent) + len(token) >= self._max_path_chars:
                raise self._path_too_long(self._key_start)
            self._path = f"{parent}/{token}"
            self._state = _COLON
        return close + 1

    def _decode(self, data: str, start: int, stop: int) -> str:
        text = data[start:stop]
        if "\\" not in text:
            # Nothing to decode: raw control characters are accepted as they are.
            if _SURROGATE.search(text):
                text = _SURROGATE.sub("\ufffd", text)
            return text
        try:
            text, _ = scanstring(text + '"', 0, False)
        except JSONDecodeError as exc:
            what, bad = _escape_error(data, start + exc.pos)
            raise self._fail(what, self._base + bad) from None
        if _SURROGATE.search(text):
            text = _SURROGATE.sub("\ufffd", text)
        return text

    def _read_number(self, data: str, i: int, ops: list[JsonOp]) -> int:
        n = len(data)
        state = self._number_state
        start = i
        while i < n:
            nxt = _NUMBER_MOVES[state].get(data[i])
            if nxt is None:
                break
            state = nxt
            i += 1
            if state in _N_DIGIT_RUNS:
                i = _match_digits(data, i).end()
        self._number_state = state
        if i > start:
            self._number += data[start:i].encode()
        if i == n:
            return i
        if data[i] in _NUMBER_CHARS or state not in _N_ACCEPT:
            raise self._fail(f"unexpected {_describe(data[i])} in a number", self._base + i)
        self._end_number(ops, self._base + i)
        return i

    def _end_number(self, ops: list[JsonOp], end: int) -> None:
        if self._metered:
            self._spend(self._path, end)
        ops.append(_new(Set, (self._path, self._number.decode())))
        self._number = bytearray()
        self._value_done(end)

    def _read_literal(self, data: str, i: int, ops: list[JsonOp]) -> int:
        literal = self._literal
        matched = self._literal_matched
        take = min(len(data) - i, len(literal) - matched)
        for k in range(take):
            if data[i + k] != literal[matched + k]:
                raise self._fail(
                    f"unexpected {_describe(data[i + k])} in '{literal}'", self._base + i + k
                )
        matched += take
        i += take
        self._literal_matched = matched
        if matched == len(literal):
            if self._metered:
                self._spend(self._path, self._base + i - 1)
            ops.append(_new(Set, (self._path, literal)))
            self._value_done(self._base + i)
        return i

    def _read_fence(self, data: str, i: int, *, opening: bool) -> int:
        """Consume a fence at i: returns the index after it, or ~i while it is unfinished."""
        n = len(data)
        ticks = data[i : i + 3]
        if ticks != "```":
            if len(ticks) < 3 and ticks == "`" * len(ticks):
                return ~i
            bad = i + next(k for k, c in enumerate(ticks) if c != "`")
            raise self._fail(f"unexpected {_describe(data[bad])}", self._base + bad)
        i += 3
        if not opening:
            return i
        self._fenced = True
        tag = data[i : i + 4]
        if tag.lower() == "json":
            return i + 4
        if i + len(tag) == n and tag.lower() == "json"[: len(tag)]:
            return ~(i - 3)
        return i


def _whole_string(data: str, start: int) -> tuple[str, int] | None:
    """(decoded text, index after the closing quote) when the string whose content starts
    at `start` is complete and valid in `data`; else None, and the string is read piece by
    piece, which also reports any error at its exact offset. Most strings in a document
    fit in the piece that opens them: this is their fast path."""
    # Look for the end first: an exception per unfinished string would cost more than
    # the search, and JSONDecodeError counts the lines of all of `data`.
    if closing_quote(data, start) < 0:
        return None
    try:
        text, end = scanstring(data, start, False)
    except JSONDecodeError:
        return None
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text, end


def closing_quote(data: str, i: int) -> int:
    """Index of the first unescaped '"' at or after i, or -1."""
    search = i
    while True:
        q = data.find('"', search)
        if q < 0:
            return -1
        k = q
        while k > i and data[k - 1] == "\\":
            k -= 1
        if (q - k) % 2 == 0:
            return q
        search = q + 1


def _starts_escape(data: str, i: int, b: int) -> bool:
    """Whether the backslash at b starts an escape (is not itself escaped)."""
    k = b
    while k > i and data[k - 1] == "\\":
        k -= 1
    return (b - k) % 2 == 0


def _decodable_end(data: str, i: int, n: int) -> int:
    """Where string content from i stops being decodable now: the start of a trailing
    unfinished escape, or of a high surrogate escape that waits for its low half."""
    end = n
    b = data.rfind("\\", max(i, n - 5), n)
    if b >= 0 and _starts_escape(data, i, b):
        rest = n - b
        if rest == 1 or (data[b + 1] == "u" and rest < 6 and _HEX.issuperset(data[b + 2 : n])):
            end = b
    high = end - 6
    if high >= i and _HIGH_SURROGATE_ESCAPE.match(data, high) and _starts_escape(data, i, high):
        end = high
    return end


def _escape_error(data: str, pos: int) -> tuple[str, int]:
    """(what, index) of the bad character in the escape that scanstring refused at pos."""
    b = data.rfind("\\", 0, pos + 1)
    if data[b + 1] == "u":
        for k in range(b + 2, b + 6):
            if data[k] not in _HEX:
                return f"expected a hex digit in a \\u escape, found {_describe(data[k])}", k
    return f"invalid escape {_describe(data[b + 1])}", b + 1
