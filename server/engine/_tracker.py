from __future__ import annotations

import enum
from typing import NamedTuple


class DeltaMode(enum.IntEnum):
    """How a chunk relates to the text so far; the proto's DeltaMode numbers."""

    AUTO = 1
    APPEND = 2
    SNAPSHOT = 3


class Delta(NamedTuple):
    text: str
    reset: bool


class Tracker:
    """The complete text of one id and the delta of each chunk."""

    def __init__(self, mode: DeltaMode) -> None:
        raise NotImplementedError

    def add(self, chunk: str, *, max_text_bytes: int | None = None) -> Delta:
        """Track `chunk`; returns what is new. Raises ResourceExhausted, changing nothing,
        when the text would pass `max_text_bytes`."""
        raise NotImplementedError

    @property
    def text(self) -> str:
        raise NotImplementedError
