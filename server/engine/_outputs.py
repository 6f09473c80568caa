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
