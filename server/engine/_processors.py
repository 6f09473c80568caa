"""The built-in processors: each turns one id's growing text into outputs.

A processor is made per id, as ``factory(chunk_id, max_json_depth=...)``, and then called
once per applied chunk::

    process(new_text, final=..., complete_text=...) -> Output | None

``new_text`` is what the chunk added to the id's text; ``complete_text()`` returns the whole
text (costly: call it only at the final chunk). The result is None when nothing new can be
shown. A processor raises InvalidArgument for text it cannot read; it is then never called
again for that id. The JSON processors are built on JsonReader's ops and never re-parse.
A plugin processor (entry-point group ``chunkwise.processors``) is such a factory with a
``description`` attribute. A factory whose ``reads_text`` attribute is False stands for a
processor with no output at all: the engine never makes or calls one.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from json.decoder import scanstring
from typing import ClassVar

from ._jsonreader import JsonReader
from ._outputs import (
    Append,
    End,
    FileDelta,
    JsonOp,
    Output,
    PartialJson,
    ReasoningFile,
    ReasoningText,
    Set,
)

LOADING = "loading"
COMPLETED = "completed"


class TextParts:
    """A string built from many small pieces, kept as UTF-8. A Python str of text with one
    emoji in it takes 4 bytes a character, and a small str object costs ~50 bytes; a
    bytearray costs about one byte a byte and grows in place."""

    __slots__ = ("_utf8",)

    def __init__(self) -> None:
        self._utf8 = bytearray()

    def append(self, text: str) -> None:
        self._utf8 += text.encode("utf-8", "surrogatepass")

    def value(self) -> str:
        return self._utf8.decode("utf-8", "surrogatepass")


class TextProcessor:
    description: ClassVar[str] = "Any text; no output beyond the delta and the complete text."
    #: Calling it for nothing was about 6% of a `text` chunk's whole cost in the engine.
    reads_text: ClassVar[bool] = False

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        pass

    def process(
        self, new_text: str, *, final: bool, complete_text: Callable[[], str]
    ) -> Output | None:
        return None


class _JsonOpsProcessor:
    """Feeds the id's text to a JsonReader; subclasses turn ops into outputs."""

    #: Whether the subclass reads End ops; without them the reader makes fewer objects.
    needs_ends: ClassVar[bool] = True

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        self.chunk_id = chunk_id
        self._reader = JsonReader(max_depth=max_json_depth, ends=self.needs_ends)

    def _read(self, new_text: str, final: bool) -> list[JsonOp]:
        ops = self._reader.feed(new_text) if new_text else []
        if final:
            ops += self._reader.close()
        return ops


class JsonProcessor(_JsonOpsProcessor):
    description: ClassVar[str] = (
        "One JSON value; PartialJson deltas (RFC 6901 paths) that rebuild it as it grows."
    )

    needs_ends = False

    def process(
        self, new_text: str, *, final: bool, complete_text: Callable[[], str]
    ) -> Output | None:
        if not final:
            deltas = self._reader.feed(new_text) if new_text else None
            return PartialJson(deltas) if deltas else None
        deltas = self._read(new_text, final)
        start, end = self._reader.value_span
        return PartialJson(deltas, value_json=strict_json(complete_text()[start:end]))


# A JSON string token; raw control characters and lone surrogate escapes are the only
# things the reader accepts that strict JSON does not, and they live only inside strings.
_STRING_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_STRICT = re.compile(r"[\x00-\x1f]|\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _strict_string(match: re.Match[str]) -> str:
    token = match.group()
    if not _NOT_STRICT.search(token):
        return token
    text, _ = scanstring(token, 1, False)
    text = _SURROGATE.sub("\ufffd", text)
    return '"' + text.translate(_CONTROL_ESCAPES) + '"'


def _escape_table() -> dict[int, str]:
    table = {c: f"\\u{c:04x}" for c in range(0x20)}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 8: "\\b", 12: "\\f"})
    table.update({ord('"'): '\\"', ord("\\"): "\\\\"})
    return table


_CONTROL_ESCAPES = _escape_table()


def strict_json(value_text: str) -> str:
    """The value's text as strict RFC 8259 JSON, formatting and numbers kept as written."""
    if not _NOT_STRICT.search(value_text):
        return value_text
    return _STRING_TOKEN.sub(_strict_string, value_text)


class _FieldTextProcessor(_JsonOpsProcessor):
    """ReasoningText from the string field `field` of a top-level object."""

    field: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        super().__init__(chunk_id, max_json_depth=max_json_depth)
        self._path = "/" + self.field
        self._message = TextParts()
        # A repeated key would replace the text already shown; only the first is read.
        self._state = "waiting"  # -> "reading" -> "done"

    def process(
        self, new_text: str, *, final: bool, complete_text: Callable[[], str]
    ) -> Output | None:
        chunk: list[str] = []
        for op in self._read(new_text, final):
            if op.path != self._path:
                continue
            kind = type(op)
            if kind is Append and self._state == "reading":
                chunk.append(op.text)
            elif kind is Set and self._state == "waiting" and op.json == '""':
                self._state = "reading"
            elif kind is End and self._state == "reading":
                self._state = "done"
        message_chunk = "".join(chunk)
        if message_chunk:
            self._message.append(message_chunk)
        if not (message_chunk or final):
            return None
        return ReasoningText(
            id=self.chunk_id,
            title=self.title,
            secondary_title="",
            message_chunk=message_chunk,
            message=self._message.value() if final else "",
            status=COMPLETED if final else LOADING,
        )


class PlanProcessor(_FieldTextProcessor):
    description: ClassVar[str] = 'A plan, {"plan_markdown": "..."}; ReasoningText.'
    field = "plan_markdown"
    title = "Creating a plan..."


class SearchDataCatalogProcessor(_FieldTextProcessor):
    description: ClassVar[str] = 'A catalog search, {"search_requirements": "..."}; ReasoningText.'
    field = "search_requirements"
    title = "Searching your data catalog..."


def file_id(chunk_id: str, file_name: str, file_type: str) -> str:
    """The same file gets the same id on every server."""
    digest = hashlib.sha256(f"{chunk_id}:{file_name}:{file_type}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


class _File:
    __slots__ = ("name_parts", "name", "content", "content_state", "id", "unshown")

    def __init__(self) -> None:
        self.name_parts: list[str] | None = None  # while the name string is being read
        self.name: str | None = None
        self.content = TextParts()
        # A repeated key would replace content already shown; only the first is read.
        self.content_state = "waiting"  # -> "reading" -> "done"
        self.id = ""
        self.unshown: list[str] = []  # content not yet sent


_FILE_FIELD = re.compile(r"/files/(0|[1-9][0-9]*)/(name|yml_content)")


class _FilesProcessor(_JsonOpsProcessor):
    """ReasoningFile from {"files": [{"name": ..., "yml_content": ...}, ...]}."""

    file_type: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        super().__init__(chunk_id, max_json_depth=max_json_depth)
        self._files: list[_File] = []

    def process(
        self, new_text: str, *, final: bool, complete_text: Callable[[], str]
    ) -> Output | None:
        touched: dict[int, _File] = {}
        for op in self._read(new_text, final):
            match = _FILE_FIELD.fullmatch(op.path)
            if match is None:
                continue
            index = int(match.group(1))
            while len(self._files) <= index:
                self._files.append(_File())
            file = self._files[index]
            if match.group(2) == "name":
                self._on_name(file, op, touched, index)
            else:
                self._on_content(file, op, touched, index)
        files = self._files if final else [touched[k] for k in sorted(touched)]
        deltas = [self._delta(f, final) for f in files if f.name is not None]
        if not deltas and not final:
            return None
        return ReasoningFile(
            id=self.chunk_id,
            title=self.title,
            secondary_title="",
            status=COMPLETED if final else LOADING,
            files=deltas,
        )

    def _on_name(self, file: _File, op: JsonOp, touched: dict[int, _File], index: int) -> None:
        if file.name is not None:
            return  # a file keeps the name it appeared under
        kind = type(op)
        if kind is Set:
            file.name_parts = [] if op.json == '""' else None
        elif kind is Append and file.name_parts is not None:
            file.name_parts.append(op.text)
        elif kind is End and file.name_parts is not None:
            file.name = "".join(file.name_parts)
            file.name_parts = None
            file.id = file_id(self.chunk_id, file.name, self.file_type)
            touched[index] = file

    def _on_content(self, file: _File, op: JsonOp, touched: dict[int, _File], index: int) -> None:
        kind = type(op)
        if kind is Set and op.json == '""' and file.content_state == "waiting":
            file.content_state = "reading"
        elif kind is Append and file.content_state == "reading":
            file.content.append(op.text)
            file.unshown.append(op.text)
            if file.name is not None:
                touched[index] = file
        elif kind is End and file.content_state == "reading":
            file.content_state = "done"

    def _delta(self, file: _File, final: bool) -> FileDelta:
        text_chunk = "".join(file.unshown)
        file.unshown.clear()
        return FileDelta(
            id=file.id,
            file_type=self.file_type,
            file_name=file.name or "",
            version_number=1,
            status=COMPLETED if final else LOADING,
            text_chunk=text_chunk,
            text=file.content.value() if final else "",
        )


class MetricProcessor(_FilesProcessor):
    description: ClassVar[str] = (
        'Metric files, {"files": [{"name": ..., "yml_content": ...}]}; ReasoningFile.'
    )
    file_type = "metric"
    title = "Creating metric files..."


class DashboardProcessor(_FilesProcessor):
    description: ClassVar[str] = (
        'Dashboard files, {"files": [{"name": ..., "yml_content": ...}]}; ReasoningFile.'
    )
    file_type = "dashboard"
    title = "Creating dashboard files..."


BUILTIN_PROCESSORS = {
    "text": TextProcessor,
    "json": JsonProcessor,
    "plan": PlanProcessor,
    "search_data_catalog": SearchDataCatalogProcessor,
    "metric": MetricProcessor,
    "dashboard": DashboardProcessor,
}
