"""What processors show: plain values the servicer copies into proto messages.

JSON changes are two operations, each at an RFC 6901 pointer into the value being read:

    Set(path, json)     put the JSON text `json` at `path`: "{}" / "[]" when a container
                        opens, '""' when a string opens, a number / true / false / null
                        once complete. At an array index equal to the array's length it
                        adds an element; a path that exists already is replaced (only a
                        repeated object key does this).
    Append(path, text)  add decoded `text` to the end of the string at `path`.
    End(path)           the string or container at `path` is complete. The reader emits it
                        for processors; PartialJson does not carry it.

For example, ``{"a": ["x\\u00e9", 1]}`` read in one go gives::

    Set("", "{}"), Set("/a", "[]"), Set("/a/0", '""'), Append("/a/0", "xé"), End("/a/0"),
    Set("/a/1", "1"), End("/a"), End("")

Applying them in order to nothing rebuilds the value; any chunking of the text gives the
same operations, up to how the appended text is split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Set(NamedTuple):
    path: str
    json: str


class Append(NamedTuple):
    path: str
    text: str


class End(NamedTuple):
    path: str


JsonOp = Set | Append | End


@dataclass(slots=True)
class PartialJson:
    deltas: list[Set | Append]
    value_json: str = ""


@dataclass(slots=True)
class ReasoningText:
    id: str
    title: str
    secondary_title: str
    message_chunk: str
    message: str
    status: str


@dataclass(slots=True)
class FileDelta:
    id: str
    file_type: str
    file_name: str
    version_number: int
    status: str
    text_chunk: str
    text: str


@dataclass(slots=True)
class ReasoningFile:
    id: str
    title: str
    secondary_title: str
    status: str
    files: list[FileDelta] = field(default_factory=list)


Output = PartialJson | ReasoningText | ReasoningFile


# -- outputs kept for duplicates ---------------------------------------------------------
#
# The engine keeps each id's recent outputs to answer duplicates: thousands of them on a
# busy server. As objects they are tracked by the garbage collector, whose collections walk
# every tracked young object and took tens of milliseconds. A flat exact tuple of strings,
# numbers and booleans is untracked by the collector's first pass over it (a nested one may
# take several passes), so that is the form they are kept in.

_JSON, _TEXT, _FILE, _OTHER = 0, 1, 2, 3
_FILE_FIELDS = 7
_new = tuple.__new__


def freeze(output: Output | object | None) -> tuple:
    """`output` as one flat tuple; `thaw` gives it back. A plugin's own output type is kept
    as it is, inside the tuple."""
    kind = type(output)
    if output is None:
        return ()
    if kind is PartialJson:
        flat: list = [_JSON, output.value_json]
        for op in output.deltas:
            flat += (type(op) is Set, op[0], op[1])
        return tuple(flat)
    if kind is ReasoningText:
        o = output
        return (_TEXT, o.id, o.title, o.secondary_title, o.message_chunk, o.message, o.status)
    if kind is ReasoningFile:
        o = output
        flat = [_FILE, o.id, o.title, o.secondary_title, o.status]
        for f in o.files:
            flat += (
                f.id,
                f.file_type,
                f.file_name,
                f.version_number,
                f.status,
                f.text_chunk,
                f.text,
            )
        return tuple(flat)
    return (_OTHER, output)


def thaw(frozen: tuple) -> Output | object | None:
    if not frozen:
        return None
    kind = frozen[0]
    if kind == _JSON:
        ops = [
            _new(Set if frozen[k] else Append, (frozen[k + 1], frozen[k + 2]))
            for k in range(2, len(frozen), 3)
        ]
        return PartialJson(ops, frozen[1])
    if kind == _TEXT:
        return ReasoningText(*frozen[1:])
    if kind == _FILE:
        files = [
            FileDelta(*frozen[k : k + _FILE_FIELDS]) for k in range(5, len(frozen), _FILE_FIELDS)
        ]
        return ReasoningFile(*frozen[1:5], files)
    return frozen[1]
