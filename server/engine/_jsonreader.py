from __future__ import annotations

from ._outputs import JsonOp


class JsonReader:
    """Reads one JSON value fed in pieces; emits Set / Append ops as they become certain."""

    def __init__(self, *, max_depth: int = 512) -> None:
        raise NotImplementedError

    def feed(self, text: str) -> list[JsonOp]:
        """Read the next piece of the text. Raises InvalidArgument ("... at offset N", N in
        code points of all text fed) for text that cannot become JSON; after that every
        call raises the same error."""
        raise NotImplementedError

    def close(self) -> list[JsonOp]:
        """The text is complete: a top-level number is complete now. Raises InvalidArgument
        ("unexpected end of JSON at offset N") when the value is unfinished."""
        raise NotImplementedError
