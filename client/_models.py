"""The client's results: plain frozen values, never protobuf messages.

They mirror the proto field for field, so its comments (protos/chunkwise/v1/streaming.proto)
are the reference; sequences are tuples so that every value is immutable and hashable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["auto", "append", "snapshot"]
"""How a chunk relates to the text already tracked for its id.

``"auto"``      the original guessing heuristic; can lose a fragment that repeats the
                previous chunk, so use it only for callers that mix snapshots and fragments
``"append"``    every chunk is a new fragment: exact, never loses data
``"snapshot"``  every chunk is the whole text so far; a rewrite comes back with ``reset``
``None``        the id's own mode (``"auto"`` for a new id)
"""

MODES: tuple[Mode, ...] = ("auto", "append", "snapshot")


@dataclass(frozen=True, slots=True)
class UpdateError:
    """A per-message error: the request was refused, or its text cannot become JSON.

    ``code`` is a gRPC status code number (3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED,
    9 FAILED_PRECONDITION, ...); ``status`` is its name.
    """

    code: int
    message: str

    @property
    def status(self) -> str:
        from ._errors import status_name

        return status_name(self.code)


@dataclass(frozen=True, slots=True)
class JsonDelta:
    """One change at an RFC 6901 pointer; exactly one of ``set_json`` and ``append`` is set.

    ``set_json`` is JSON text to put at ``path`` ("{}", "[]", '""' when a container or string
    opens, a scalar once complete); ``append`` is decoded text to add to the string there.
    """

    path: str
    set_json: str | None = None
    append: str | None = None


@dataclass(frozen=True, slots=True)
class PartialJson:
    """From the ``json`` processor. ``value_json`` is the whole value, on the final update only."""

    deltas: tuple[JsonDelta, ...] = ()
    value_json: str = ""


@dataclass(frozen=True, slots=True)
class ReasoningText:
    """From ``plan`` and ``search_data_catalog``: ``message_chunk`` is the new text."""

    id: str
    title: str
    secondary_title: str
    message_chunk: str
    message: str
    status: str


@dataclass(frozen=True, slots=True)
class FileDelta:
    """What is new for one file: ``text_chunk``; ``text`` is the whole file on the final update."""

    id: str
    file_type: str
    file_name: str
    version_number: int
    status: str
    text_chunk: str
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningFile:
    """From ``metric`` and ``dashboard``: one FileDelta per file with something new."""

    id: str
    title: str
    secondary_title: str
    status: str
    files: tuple[FileDelta, ...] = ()


Output = ReasoningText | ReasoningFile | PartialJson


@dataclass(frozen=True, slots=True)
class ChunkUpdate:
    """The answer to one chunk.

    ``delta`` is the text this chunk added (the whole new text after a ``reset``);
    ``output`` is what the processor can newly show, or None; ``error`` is set when the
    request was refused or its JSON is invalid (the stream goes on); ``complete_text`` is
    filled on the ``final`` update only; ``duplicate`` marks an answer to a request the
    server had already applied, such as one resent after a dropped stream.
    """

    chunk_id: str
    sequence: int
    delta: str = ""
    output: Output | None = None
    error: UpdateError | None = None
    final: bool = False
    complete_text: str = ""
    reset: bool = False
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class TextInfo:
    """What ``get_complete_text`` answers."""

    text: str
    last_sequence: int
    processor_type: str


@dataclass(frozen=True, slots=True)
class ProcessorInfo:
    """One processor the server knows: the name to send as ``processor_type``."""

    name: str
    description: str
