"""The one place where protobuf messages become client values and back."""

from __future__ import annotations

from chunkwise.v1 import streaming_pb2

from ._models import (
    MODES,
    ChunkUpdate,
    FileDelta,
    JsonDelta,
    Mode,
    Output,
    PartialJson,
    ProcessorInfo,
    ReasoningFile,
    ReasoningText,
    TextInfo,
    UpdateError,
)

_MODE_NUMBERS = {
    None: streaming_pb2.DELTA_MODE_UNSPECIFIED,
    "auto": streaming_pb2.DELTA_MODE_AUTO,
    "append": streaming_pb2.DELTA_MODE_APPEND,
    "snapshot": streaming_pb2.DELTA_MODE_SNAPSHOT,
}


def mode_number(mode: Mode | None) -> streaming_pb2.DeltaMode:
    """The proto DeltaMode for a mode name; a ValueError lists the names allowed."""
    try:
        return _MODE_NUMBERS[mode]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(name) for name in MODES)
        raise ValueError(
            f"mode must be one of {allowed} or None (the id's own), not {mode!r}"
        ) from None


def chunk_request(
    chunk_id: str,
    chunk: str,
    *,
    processor_type: str,
    mode: Mode | None,
    final: bool,
    sequence: int,
) -> streaming_pb2.ProcessChunksRequest:
    if not isinstance(chunk_id, str):
        raise TypeError(f"chunk_id must be a str, not {type(chunk_id).__name__}")
    if not isinstance(chunk, str):
        raise TypeError(f"chunk must be a str, not {type(chunk).__name__}")
    return streaming_pb2.ProcessChunksRequest(
        chunk_id=chunk_id,
        chunk=chunk,
        processor_type=processor_type,
        mode=mode_number(mode),
        final=final,
        sequence=sequence,
    )


def chunk_update(
    response: streaming_pb2.ProcessChunksResponse, error: UpdateError | None = None
) -> ChunkUpdate:
    """The update for an answer; ``error`` stands in for the answer's own when given."""
    if error is None and response.HasField("error"):
        error = UpdateError(code=response.error.code, message=response.error.message)
    return ChunkUpdate(
        chunk_id=response.chunk_id,
        sequence=response.sequence,
        delta=response.delta,
        output=_output(response.output) if response.HasField("output") else None,
        error=error,
        final=response.final,
        complete_text=response.complete_text,
        reset=response.reset,
        duplicate=response.duplicate,
    )


def _output(output: streaming_pb2.ProcessedOutput) -> Output | None:
    kind = output.WhichOneof("kind")
    if kind == "text":
        text = output.text
        return ReasoningText(
            id=text.id,
            title=text.title,
            secondary_title=text.secondary_title,
            message_chunk=text.message_chunk,
            message=text.message,
            status=text.status,
        )
    if kind == "file":
        file = output.file
        return ReasoningFile(
            id=file.id,
            title=file.title,
            secondary_title=file.secondary_title,
            status=file.status,
            files=tuple(_file_delta(delta) for delta in file.files),
        )
    if kind == "json":
        return PartialJson(
            deltas=tuple(_json_delta(delta) for delta in output.json.deltas),
            value_json=output.json.value_json,
        )
    # A kind added to the proto after this client was built: nothing it can show.
    return None


def _file_delta(delta: streaming_pb2.FileDelta) -> FileDelta:
    return FileDelta(
        id=delta.id,
        file_type=delta.file_type,
        file_name=delta.file_name,
        version_number=delta.version_number,
        status=delta.status,
        text_chunk=delta.text_chunk,
        text=delta.text,
    )


def _json_delta(delta: streaming_pb2.JsonDelta) -> JsonDelta:
    op = delta.WhichOneof("op")
    if op == "append":
        return JsonDelta(path=delta.path, append=delta.append)
    return JsonDelta(path=delta.path, set_json=delta.set_json)


def text_info(response: streaming_pb2.GetCompleteTextResponse) -> TextInfo:
    return TextInfo(
        text=response.text,
        last_sequence=response.last_sequence,
        processor_type=response.processor_type,
    )


def processors(response: streaming_pb2.ListProcessorsResponse) -> list[ProcessorInfo]:
    return [
        ProcessorInfo(name=info.name, description=info.description) for info in response.processors
    ]
