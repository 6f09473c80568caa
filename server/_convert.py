"""Engine values → proto messages. The one place that knows both shapes."""

from __future__ import annotations

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.engine import (
    Append,
    ChunkResult,
    EngineError,
    FileDelta,
    InvalidArgument,
    Mode,
    NotFound,
    Output,
    PartialJson,
    ReasoningFile,
    ReasoningText,
    ResourceExhausted,
    Set,
)

_MODES: dict[int, Mode | None] = {
    pb.DELTA_MODE_UNSPECIFIED: None,
    pb.DELTA_MODE_AUTO: Mode.AUTO,
    pb.DELTA_MODE_APPEND: Mode.APPEND,
    pb.DELTA_MODE_SNAPSHOT: Mode.SNAPSHOT,
}
_MODE_NAMES = ", ".join(f"{n} ({m.name})" for n, m in _MODES.items() if m is not None)


def known_delta_mode(number: int) -> Mode | None:
    """The engine's mode for a proto DeltaMode number; None for UNSPECIFIED or a number
    outside the enum."""
    return _MODES.get(number)


def delta_mode(number: int) -> Mode | None:
    """The engine's mode for a proto DeltaMode number; None for UNSPECIFIED (the id's own).
    Raises InvalidArgument for a number outside the enum, which proto3 lets through."""
    try:
        return _MODES[number]
    except KeyError:
        raise InvalidArgument(f"unknown delta mode {number}; known: {_MODE_NAMES}") from None


def status_details(error: EngineError) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying the error as a google.rpc.Status with a detail naming its
    subject: BadRequest (the field) for INVALID_ARGUMENT, ResourceInfo (the id) for
    NOT_FOUND, QuotaFailure (the setting) for RESOURCE_EXHAUSTED. Empty for other errors."""
    detail: Message
    if not error.subject:
        return ()
    if isinstance(error, InvalidArgument):
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=error.subject, description=error.message
                )
            ]
        )
    elif isinstance(error, NotFound):
        detail = error_details_pb2.ResourceInfo(
            resource_type="chunk id", resource_name=error.subject, description=error.message
        )
    elif isinstance(error, ResourceExhausted):
        detail = error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=error.subject, description=error.message
                )
            ]
        )
    else:
        return ()
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(
        code=status_code(error).value[0], message=error.message, details=[packed]
    )
    return tuple(rpc_status.to_status(status).trailing_metadata)


def status_code(error: EngineError) -> grpc.StatusCode:
    """The gRPC status an engine error asks for; UNKNOWN for a hint gRPC does not name."""
    return getattr(grpc.StatusCode, error.status_hint, grpc.StatusCode.UNKNOWN)


def error_message(code: grpc.StatusCode, message: str) -> pb.Error:
    return pb.Error(code=code.value[0], message=message)


def chunk_response(result: ChunkResult) -> pb.ProcessChunksResponse:
    # Built field by field, defaults left out: this runs once per message, and every
    # keyword given to a protobuf constructor costs time even when it is a default.
    response = pb.ProcessChunksResponse(chunk_id=result.chunk_id, delta=result.delta)
    if result.sequence:
        response.sequence = result.sequence
    if result.final:
        response.final = True
        response.complete_text = result.complete_text
    if result.reset:
        response.reset = True
    if result.duplicate:
        response.duplicate = True
    if result.output is not None:
        _fill_output(response.output, result.output)
    if result.error is not None:
        response.error.CopyFrom(error_message(status_code(result.error), result.error.message))
    return response


def _fill_output(message: pb.ProcessedOutput, output: Output) -> None:
    if isinstance(output, PartialJson):
        # An empty delta list still selects the `json` arm of the oneof.
        message.json.SetInParent()
        if output.value_json:
            message.json.value_json = output.value_json
        add = message.json.deltas.add
        for op in output.deltas:
            if type(op) is Set:
                add(path=op.path, set_json=op.json)
            elif type(op) is Append:
                add(path=op.path, append=op.text)
            else:
                raise TypeError(f"unknown JSON operation {type(op).__name__}")
    elif isinstance(output, ReasoningText):
        message.text.CopyFrom(
            pb.ReasoningText(
                id=output.id,
                title=output.title,
                secondary_title=output.secondary_title,
                message_chunk=output.message_chunk,
                message=output.message,
                status=output.status,
            )
        )
    elif isinstance(output, ReasoningFile):
        message.file.CopyFrom(
            pb.ReasoningFile(
                id=output.id,
                title=output.title,
                secondary_title=output.secondary_title,
                status=output.status,
                files=[_file_delta(f) for f in output.files],
            )
        )
    else:
        raise TypeError(f"unknown processor output {type(output).__name__}")


def _file_delta(delta: FileDelta) -> pb.FileDelta:
    return pb.FileDelta(
        id=delta.id,
        file_type=delta.file_type,
        file_name=delta.file_name,
        version_number=delta.version_number,
        status=delta.status,
        text_chunk=delta.text_chunk,
        text=delta.text,
    )


def processors_response(processors: list[tuple[str, str]]) -> pb.ListProcessorsResponse:
    return pb.ListProcessorsResponse(
        processors=[pb.ProcessorInfo(name=name, description=text) for name, text in processors]
    )
