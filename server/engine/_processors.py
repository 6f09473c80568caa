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

Every built-in processor has an O(1) ``held_bytes``: an upper estimate of the memory it
holds beyond its fixed size (its reader's included), for the engine's memory budget; and
``recount_held_bytes()``, the same figure computed from scratch, for tests. Text they keep
(a message, a file's name or content) is decoded from the text and kept as UTF-8, so it is
never larger than the text that carries it; and a file name is at most
MAX_FILE_NAME_CHARS code points, since every FileDelta of the file repeats it.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from ._errors import InvalidArgument
from ._jsonreader import (
    CHAR_BYTES,
    STR_BYTES,
    JsonReader,
    bytearray_bytes,
    closing_quote,
)
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

if TYPE_CHECKING:
    # json.decoder.scanstring is _json's (C) scanstring; typeshed declares it only there.
    from _json import scanstring
else:
    from json.decoder import scanstring


class Processor(Protocol):
    """One id's processor, as the session calls it (see the module's docstring). It may
    also have ``held_bytes`` and ``growth_bound(text)``, for the memory budget."""

    def process(
        self, new_text: str, *, final: bool, complete_text: Callable[[], str]
    ) -> Output | None: ...


class ProcessorFactory(Protocol):
    """Makes an id's processor. It may also have a ``description`` (a str, for
    ListProcessors) and ``reads_text = False`` (it shows nothing: never made or called)."""

    def __call__(self, chunk_id: str, *, max_json_depth: int) -> Processor: ...


LOADING = "loading"
COMPLETED = "completed"

MAX_FILE_NAME_CHARS = 1024


class TextProcessor:
    description: ClassVar[str] = "Any text; no output beyond the delta and the complete text."
    #: Calling it for nothing was about 6% of a `text` chunk's whole cost in the engine.
    reads_text: ClassVar[bool] = False
    held_bytes: ClassVar[int] = 0

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        pass

    def recount_held_bytes(self) -> int:
        return 0

    def process(
        self, new_text: str, *, final: bool, complete_text: Callable[[], str]
    ) -> Output | None:
        return None


class _JsonOpsProcessor:
    """Feeds the id's text to a JsonReader; subclasses turn ops into outputs."""

    #: Whether the subclass reads End ops; without them the reader makes fewer objects.
    needs_ends: ClassVar[bool] = True
    #: Whether the subclass needs the offsets where strings open (JsonReader.string_starts).
    needs_string_starts: ClassVar[bool] = False

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        self.chunk_id = chunk_id
        self._reader = JsonReader(
            max_depth=max_json_depth,
            ends=self.needs_ends,
            string_starts=self.needs_string_starts,
        )

    # The engine reads it once a chunk: a C getter spares a Python call.
    held_bytes = property(attrgetter("_reader.held_bytes"))

    def recount_held_bytes(self) -> int:
        return self._reader.recount_held_bytes()

    def growth_bound(self, text: str) -> int:
        """The most `held_bytes` can grow by when `text` is processed; the engine reserves
        it from the memory budget before the chunk is read."""
        return self._reader.growth_bound(text)

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
        # The reader was made with ends=False (needs_ends): its ops are all Set or Append,
        # which its type cannot say. Not cast: this runs once a chunk.
        if not final:
            deltas = self._reader.feed(new_text) if new_text else None
            return PartialJson(deltas) if deltas else None  # type: ignore[arg-type]
        deltas = self._read(new_text, final)
        # close() returned: the value is complete, so its span is known.
        start, end = cast("tuple[int, int]", self._reader.value_span)
        return PartialJson(
            deltas,  # type: ignore[arg-type]
            value_json=strict_json(complete_text()[start:end]),
        )


# Raw control characters and lone surrogate escapes are the only things the reader accepts
# that strict JSON does not, and they live only inside strings. A surrogate pair is
# rewritten too, as the character it stands for.
_NOT_STRICT = re.compile(r"[\x00-\x1f]|\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _strict_string(token: str) -> str:
    text, _ = scanstring(token, 1, False)
    text = _SURROGATE.sub("\ufffd", text)
    return '"' + text.translate(_CONTROL_ESCAPES) + '"'


# How strict JSON writes, in a string, each character it cannot hold as it is: json.dumps's
# escapes. Built at module level, not in a function: mutmut mutates only functions, and no
# test could tell a mutant of a function that runs once, at import.
_SHORT_ESCAPES = {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}
_CONTROL_ESCAPES: dict[int, str] = {
    c: _SHORT_ESCAPES.get(chr(c), f"\\u{c:04x}") for c in [*range(0x20), ord('"'), ord("\\")]
}


def strict_json(value_text: str) -> str:
    """The value's text as strict RFC 8259 JSON, formatting and numbers kept as written.

    `value_text` is JSON the reader accepted, so outside strings there is no quote. One
    pass finds each string by its quotes (a regex over a long string would backtrack and
    hold memory per character), and only a string that needs it is decoded and written
    again."""
    bad = _NOT_STRICT.search(value_text)
    if bad is None:
        return value_text
    out: list[str] = []
    copied = 0
    quote = value_text.find('"')
    while quote >= 0:
        close = closing_quote(value_text, quote + 1)
        if close < 0:
            break
        if bad.start() < quote:
            # Each search starts past the last match found: together they read the text
            # once.
            bad = _NOT_STRICT.search(value_text, quote)
            if bad is None:
                break
        if bad.start() < close:
            out.append(value_text[copied:quote])
            out.append(_strict_string(value_text[quote : close + 1]))
            copied = close + 1
        quote = value_text.find('"', close + 1)
    out.append(value_text[copied:])
    return "".join(out)


class _FieldTextProcessor(_JsonOpsProcessor):
    """ReasoningText from the string field `field` of a top-level object."""

    field: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        super().__init__(chunk_id, max_json_depth=max_json_depth)
        self._path = "/" + self.field
        # Kept as UTF-8: a str of text with one emoji in it takes 4 bytes a character.
        self._message = bytearray()
        # A repeated key would replace the text already shown; only the first is read.
        self._state = "waiting"  # -> "reading" -> "done"

    @property
    def held_bytes(self) -> int:
        size = len(self._message)  # bytearray_bytes, written out: read once a chunk
        return self._reader.held_bytes + size + (size >> 3) + 32

    def recount_held_bytes(self) -> int:
        return self._reader.recount_held_bytes() + bytearray_bytes(len(self._message))

    def growth_bound(self, text: str) -> int:
        # The message grows by the UTF-8 of at most all the text's characters.
        return self._reader.growth_bound(text) + bytearray_bytes(CHAR_BYTES * len(text))

    def process(
        self, new_text: str, *, final: bool, complete_text: Callable[[], str]
    ) -> Output | None:
        chunk: list[str] = []
        # Ops read by index, as the tuples they are: (path,) or (path, json or text). Their
        # kind is told by `type(op) is`, which the type of an op (a union) would not follow.
        ops: Sequence[tuple[str, ...]] = self._read(new_text, final)
        for op in ops:
            if op[0] != self._path:
                continue
            kind = type(op)
            if kind is Append and self._state == "reading":
                chunk.append(op[1])
            elif kind is Set and self._state == "waiting" and op[1] == '""':
                self._state = "reading"
            elif kind is End and self._state == "reading":
                self._state = "done"
        message_chunk = "".join(chunk)
        if message_chunk:
            self._message += message_chunk.encode("utf-8", "surrogatepass")
        if not (message_chunk or final):
            return None
        return ReasoningText(
            id=self.chunk_id,
            title=self.title,
            secondary_title="",
            message_chunk=message_chunk,
            message=self._message.decode("utf-8", "surrogatepass") if final else "",
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


# A file's own size for held_bytes: the object, its empty bytearray, two ints, its slot in
# the list of files, and room for that bytearray's over-allocation.
_FILE_BYTES = 256
# A name is joined with its file's id once complete: two strs, the id 36 ASCII characters.
_NAMED_BYTES = 2 * STR_BYTES + CHAR_BYTES * 36
_WAITING, _READING, _DONE = 0, 1, 2
_NOWHERE = "-"  # a path no op has: every pointer is "" or starts with "/"


class _File:
    __slots__ = ("name_so_far", "name_start", "name", "id", "content", "content_state", "shown")

    def __init__(self) -> None:
        self.name_so_far: str | None = None  # while the name string is being read
        self.name_start = 0  # offset of the name's opening quote
        self.name: str | None = None
        self.id = ""
        self.content = bytearray()  # UTF-8
        # A repeated key would replace content already shown; only the first is read.
        self.content_state = _WAITING
        self.shown = 0  # bytes of content already sent


class _FilesProcessor(_JsonOpsProcessor):
    """ReasoningFile from {"files": [{"name": ..., "yml_content": ...}, ...]}.

    Only the elements of the first array at /files are files: a "files" object, a later
    "files" array and anything deeper are ignored. Ops come in document order, so at most
    one file is being read, and it is the last one: each op is placed by comparing its
    path with the few this file's fields and the next element have, with no index parsed.
    """

    file_type: ClassVar[str]
    title: ClassVar[str]
    needs_string_starts = True

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        super().__init__(chunk_id, max_json_depth=max_json_depth)
        self._files: list[_File] = []
        self._array = _WAITING  # the array at /files
        self._file: _File | None = None
        self._elements = 0  # of the array, files or not
        self._next_element = _NOWHERE  # the path of the array's next element
        self._name_path = self._content_path = _NOWHERE  # the file's fields
        self._held = 0  # held_bytes of the files, but their content
        self._content_bytes = 0

    @property
    def held_bytes(self) -> int:
        content = self._content_bytes
        return self._reader.held_bytes + self._held + content + (content >> 3)

    def recount_held_bytes(self) -> int:
        held = content = 0
        for f in self._files:
            held += _FILE_BYTES
            if f.name_so_far is not None:
                held += STR_BYTES + CHAR_BYTES * len(f.name_so_far)
            if f.name is not None:
                held += _NAMED_BYTES + CHAR_BYTES * len(f.name)
            content += len(f.content)
        return self._reader.recount_held_bytes() + held + content + (content >> 3)

    def growth_bound(self, text: str) -> int:
        # A file is an object: one for each '{' (all characters, for a short text); a
        # name's characters are held twice while it completes; content grows by UTF-8.
        chars = len(text)
        opens = text.count("{") + 1 if chars > 256 else chars + 1
        files = opens * (_FILE_BYTES + STR_BYTES + _NAMED_BYTES)
        names = 2 * CHAR_BYTES * chars
        return self._reader.growth_bound(text) + files + names + bytearray_bytes(4 * chars)

    def process(
        self, new_text: str, *, final: bool, complete_text: Callable[[], str]
    ) -> Output | None:
        touched: list[_File] = []
        ops = self._read(new_text, final)
        if ops:
            self._apply(ops, touched)
        files = self._files if final else touched
        deltas = [self._delta(f, f.name, final) for f in files if f.name is not None]
        if not deltas and not final:
            return None
        return ReasoningFile(
            id=self.chunk_id,
            title=self.title,
            secondary_title="",
            status=COMPLETED if final else LOADING,
            files=deltas,
        )

    def _apply(self, ops: Sequence[tuple[str, ...]], touched: list[_File]) -> None:
        """`ops` are read by index, as the tuples they are: (path,) or (path, json or text)."""
        for index, op in enumerate(ops):
            path = op[0]
            if path == self._content_path:
                self._on_content(op, touched)
            elif path == self._name_path:
                self._on_name(op, touched, index)
            elif path == self._next_element:
                self._on_element(op)
            elif path == "/files":
                kind = type(op)
                if kind is Set and op[1] == "[]" and self._array == _WAITING:
                    self._array = _READING
                    self._next_element = "/files/0"
                elif kind is End and self._array == _READING:
                    self._array = _DONE
                    self._file = None
                    self._next_element = self._name_path = self._content_path = _NOWHERE

    def _on_element(self, op: tuple[str, ...]) -> None:
        """The Set that opens the array's next element: a file when it is an object."""
        self._elements += 1
        self._next_element = f"/files/{self._elements}"
        if op[1] == "{}":
            self._file = _File()
            self._files.append(self._file)
            self._held += _FILE_BYTES
            self._name_path = op[0] + "/name"
            self._content_path = op[0] + "/yml_content"
        else:
            self._file = None
            self._name_path = self._content_path = _NOWHERE

    def _on_name(self, op: tuple[str, ...], touched: list[_File], index: int) -> None:
        # Not None: the name's path is set only with a file (_on_element).
        file: _File = self._file  # type: ignore[assignment]
        if file.name is not None:
            return  # a file keeps the name it appeared under
        kind = type(op)
        so_far = file.name_so_far
        if kind is Append:
            if so_far is not None:
                text = op[1]
                if len(so_far) + len(text) > MAX_FILE_NAME_CHARS:
                    raise InvalidArgument(
                        f"file name longer than {MAX_FILE_NAME_CHARS} characters "
                        f"at offset {file.name_start}"
                    )
                file.name_so_far = so_far + text
                self._held += CHAR_BYTES * len(text)
        elif kind is Set:
            if op[1] == '""' and so_far is None:
                file.name_so_far = ""
                # A dict: the reader was made with string_starts (needs_string_starts).
                starts = cast("dict[int, int]", self._reader.string_starts)
                file.name_start = starts[index]
                self._held += STR_BYTES
        elif so_far is not None:
            file.name = so_far
            file.name_so_far = None
            file.id = file_id(self.chunk_id, so_far, self.file_type)
            self._held += _NAMED_BYTES - STR_BYTES
            if not touched or touched[-1] is not file:
                touched.append(file)

    def _on_content(self, op: tuple[str, ...], touched: list[_File]) -> None:
        # Not None: the content's path is set only with a file (_on_element).
        file: _File = self._file  # type: ignore[assignment]
        kind = type(op)
        if kind is Append:
            if file.content_state == _READING:
                data = op[1].encode("utf-8", "surrogatepass")
                file.content += data
                self._content_bytes += len(data)
                if file.name is not None and (not touched or touched[-1] is not file):
                    touched.append(file)
        elif kind is Set:
            if op[1] == '""' and file.content_state == _WAITING:
                file.content_state = _READING
        elif file.content_state == _READING:
            file.content_state = _DONE

    def _delta(self, file: _File, name: str, final: bool) -> FileDelta:
        """The file's delta; `name` is its name, once it has one."""
        content = file.content
        text_chunk = ""
        if file.shown < len(content):
            text_chunk = content[file.shown :].decode("utf-8", "surrogatepass")
            file.shown = len(content)
        return FileDelta(
            id=file.id,
            file_type=self.file_type,
            file_name=name,
            version_number=1,
            status=COMPLETED if final else LOADING,
            text_chunk=text_chunk,
            text=content.decode("utf-8", "surrogatepass") if final else "",
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


BUILTIN_PROCESSORS: dict[str, ProcessorFactory] = {
    "text": TextProcessor,
    "json": JsonProcessor,
    "plan": PlanProcessor,
    "search_data_catalog": SearchDataCatalogProcessor,
    "metric": MetricProcessor,
    "dashboard": DashboardProcessor,
}
