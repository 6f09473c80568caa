"""How the CLI shows updates: one readable line each, or one JSON object each."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ._models import ChunkUpdate, PartialJson, ReasoningFile, ReasoningText

_OUTPUT_KINDS = {ReasoningText: "text", ReasoningFile: "file", PartialJson: "json"}
_LONGEST = 200


def _quoted(text: str) -> str:
    """Text as a JSON string, cut in the middle when long so that a line stays a line."""
    if len(text) > _LONGEST:
        half = _LONGEST // 2
        return f"{json.dumps(text[:half])}…({len(text)} chars)…{json.dumps(text[-half:])}"
    return json.dumps(text, ensure_ascii=False)


def _shown(update: ChunkUpdate) -> str:
    output = update.output
    # "+" marks what is new; on the final update "=" gives the whole text as well.
    if isinstance(output, ReasoningText):
        shown = f"{output.title} [{output.status}] +{_quoted(output.message_chunk)}"
        return f"{shown} = {_quoted(output.message)}" if update.final else shown
    if isinstance(output, ReasoningFile):
        files = ", ".join(
            f"{file.file_name} +{_quoted(file.text_chunk)}"
            + (f" = {_quoted(file.text)}" if update.final else "")
            for file in output.files
        )
        return f"{output.title} [{output.status}] {files}".rstrip()
    if isinstance(output, PartialJson):
        ops = [
            f"{delta.path or '/'} = {delta.set_json}"
            if delta.set_json is not None
            else f"{delta.path or '/'} += {_quoted(delta.append or '')}"
            for delta in output.deltas
        ]
        if update.final and output.value_json:
            value = output.value_json
            ops.append(f"value {value if len(value) <= _LONGEST else _quoted(value)}")
        return "; ".join(ops)
    return f"+{_quoted(update.delta)}"


def line(update: ChunkUpdate) -> str:
    """``#3 Creating a plan... [loading] +"more text"``, with flags and any error after."""
    parts = [f"#{update.sequence}", _shown(update)]
    for flag in ("reset", "duplicate", "final"):
        if getattr(update, flag):
            parts.append(f"[{flag}]")
    if update.final:
        parts.append(f"({len(update.complete_text)} chars)")
    if update.error is not None:
        parts.append(f"error {update.error.status}: {update.error.message}")
    return " ".join(part for part in parts if part)


def as_json(update: ChunkUpdate) -> str:
    """Every field of the update, with ``output.kind`` saying which output it is."""
    record: dict[str, Any] = dataclasses.asdict(update)
    if update.output is not None:
        record["output"] = {"kind": _OUTPUT_KINDS[type(update.output)], **record["output"]}
    if update.error is not None:
        record["error"]["status"] = update.error.status
    return json.dumps(record, ensure_ascii=False)
