"""Rebuilding the value that the ``json`` processor's updates describe."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ._errors import UnrepresentableValue
from ._models import ChunkUpdate, JsonDelta, PartialJson

_NOTHING = object()


class JsonBuilder:
    """The JSON value so far of one id, built from its updates in order.

        builder = JsonBuilder()
        for update in chunkwise.process("call-1", chunks, processor_type="json"):
            builder.apply(update)
            show(builder.value)

    Strings grow in place as their text arrives; a number, true, false or null appears once
    complete. An update with ``reset`` starts the value over. Numbers are read with
    ``json.loads``; pass ``parse_float=decimal.Decimal`` to keep every digit of a fraction.
    An integer Python cannot hold (see ``sys.set_int_max_str_digits``) raises
    UnrepresentableValue.
    """

    def __init__(self, *, parse_float: Any = float) -> None:
        self._value: Any = _NOTHING
        self._parse_float = parse_float

    @property
    def has_value(self) -> bool:
        """False until the value's first character has been read."""
        return self._value is not _NOTHING

    @property
    def value(self) -> Any:
        """The value so far; a LookupError before it has begun."""
        if self._value is _NOTHING:
            raise LookupError("no JSON value has begun yet")
        return self._value

    def apply(self, update: ChunkUpdate) -> None:
        """Apply one update of the id; updates without JSON output change nothing."""
        if update.reset:
            self._value = _NOTHING
        if isinstance(update.output, PartialJson):
            self.apply_deltas(update.output.deltas)

    def apply_deltas(self, deltas: Iterable[JsonDelta]) -> None:
        for delta in deltas:
            tokens = _pointer(delta.path)
            if delta.set_json is not None:
                self._set(tokens, self._load(delta.set_json, delta))
            else:
                self._append(tokens, delta.append or "")

    def _load(self, set_json: str, delta: JsonDelta) -> Any:
        """``delta.set_json`` as a value, passed apart once the caller has seen it is set."""
        try:
            return json.loads(set_json, parse_float=self._parse_float)
        except json.JSONDecodeError:
            raise  # not JSON at all: the server broke the protocol
        except ValueError as exc:
            raise UnrepresentableValue(f"cannot hold the value at {delta.path!r}: {exc}") from exc

    def _set(self, tokens: list[str], value: Any) -> None:
        if not tokens:
            self._value = value
            return
        parent, key = self._parent(tokens)
        if isinstance(parent, list):
            index = _index(key, len(parent) + 1)
            if index == len(parent):
                parent.append(value)
            else:
                parent[index] = value
        else:
            parent[key] = value

    def _append(self, tokens: list[str], text: str) -> None:
        if not tokens:
            self._value = self._string(self._value) + text
            return
        parent, key = self._parent(tokens)
        if isinstance(parent, list):
            index = _index(key, len(parent))
            parent[index] = self._string(parent[index]) + text
        else:
            parent[key] = self._string(parent[key]) + text

    def _parent(self, tokens: list[str]) -> tuple[Any, str]:
        node = self.value
        for token in tokens[:-1]:
            node = node[_index(token, len(node))] if isinstance(node, list) else node[token]
        if not isinstance(node, dict | list):
            raise ValueError(f"/{'/'.join(tokens[:-1])} is not a container")
        return node, tokens[-1]

    @staticmethod
    def _string(current: Any) -> str:
        if not isinstance(current, str):
            raise ValueError(f"cannot append text to {type(current).__name__}")
        return current


def _pointer(path: str) -> list[str]:
    """RFC 6901: "" is the whole value; "/a~1b/0" is ["a/b", "0"]."""
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"not a JSON pointer: {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(token: str, limit: int) -> int:
    # Checked by length before int(), which refuses more than 4,300 digits.
    if (
        not (token.isascii() and token.isdigit())
        or (len(token) > 1 and token[0] == "0")
        or len(token) > len(str(limit))
        or int(token) >= limit
    ):
        raise ValueError(f"no array element {token[:20]!r}")
    return int(token)
