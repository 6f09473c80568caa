"""Errors the client raises.

    ChunkwiseError            every failed call (``.code``: grpc.StatusCode or None,
                              ``.message``, ``.details``: the google.rpc details)
    ├── Cancelled             CANCELLED: the call was cancelled, by this side or the server
    ├── Unknown               UNKNOWN, and any status without a class of its own
    ├── InvalidArgument       INVALID_ARGUMENT: empty or oversized chunk id, unknown processor
    ├── DeadlineExceeded      DEADLINE_EXCEEDED: the client's ``timeout`` passed
    ├── NotFound              NOT_FOUND: the id is not tracked
    ├── AlreadyExists         ALREADY_EXISTS
    ├── PermissionDenied      PERMISSION_DENIED
    ├── ResourceExhausted     RESOURCE_EXHAUSTED: a message past the server's size limit
    ├── FailedPrecondition    FAILED_PRECONDITION
    ├── Aborted               ABORTED
    ├── OutOfRange            OUT_OF_RANGE
    ├── Unimplemented         UNIMPLEMENTED: the server does not know the call
    ├── Internal              INTERNAL: a bug in the server
    ├── Unavailable           UNAVAILABLE: no server, or it is shutting down; raised once
    │                         the retries are spent
    ├── DataLoss              DATA_LOSS
    ├── Unauthenticated       UNAUTHENTICATED: missing or wrong token
    ├── ProtocolError         the server broke the ProcessChunks contract (an answer out of
    │                         order, or the stream ended with requests unanswered)
    └── UnrepresentableValue  JsonBuilder got a value Python cannot hold: an integer past
                              sys.get_int_max_str_digits() digits. Also a ValueError.

A per-message error inside a ProcessChunks answer is not raised: it is ``update.error``, and
the stream goes on. ``raise_on_error=True`` raises it as the class of its code instead.

gRPC errors are turned into these at one place, ``map_grpc_errors``, for unary calls and for
errors raised while a stream is read alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class ChunkwiseError(Exception):
    grpc_status_code: grpc.StatusCode | None = None

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        details: tuple[Message, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.grpc_status_code
        #: The google.rpc details the server sent with the status, decoded: a BadRequest
        #: naming the field for INVALID_ARGUMENT, a ResourceInfo naming the id for
        #: NOT_FOUND, a QuotaFailure naming the setting for RESOURCE_EXHAUSTED.
        self.details = details

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"{self.code.name}: {self.message}"


class Cancelled(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.CANCELLED


class Unknown(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.ABORTED


class OutOfRange(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.INTERNAL


class Unavailable(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(ChunkwiseError):
    grpc_status_code = grpc.StatusCode.UNAUTHENTICATED


class ProtocolError(ChunkwiseError):
    pass


class UnrepresentableValue(ChunkwiseError, ValueError):
    """The server passes numbers on as written; Python's int() refuses one of more than
    sys.get_int_max_str_digits() digits (4,300 by default). A ValueError too, which is
    what JsonBuilder raised for it before."""


# Built from the classes themselves, so a status can only be mapped the way its class says.
_CLASS_BY_STATUS: dict[grpc.StatusCode, type[ChunkwiseError]] = {
    cls.grpc_status_code: cls
    for cls in ChunkwiseError.__subclasses__()
    if cls.grpc_status_code is not None
}
_STATUS_BY_NUMBER: dict[int, grpc.StatusCode] = {
    status.value[0]: status for status in grpc.StatusCode
}


def status_name(number: int) -> str:
    """The name of a gRPC status code number, such as "INVALID_ARGUMENT"; "CODE_<n>" if unknown."""
    status = _STATUS_BY_NUMBER.get(number)
    return status.name if status is not None else f"CODE_{number}"


def error_for_status(
    status: grpc.StatusCode | int, message: str, details: tuple[Message, ...] = ()
) -> ChunkwiseError:
    """The error for a status, given as a grpc.StatusCode or its number."""
    if isinstance(status, int):
        resolved = _STATUS_BY_NUMBER.get(status)
        if resolved is None:
            return Unknown(f"status {status}: {message}", details=details)
        status = resolved
    cls = _CLASS_BY_STATUS.get(status, Unknown)
    return cls(message, code=status, details=details)


def _status_details(exc: grpc.RpcError) -> tuple[Message, ...]:
    """The google.rpc.Status details of a failed call, those of known types decoded."""
    if not callable(getattr(exc, "trailing_metadata", None)):
        return ()
    try:
        status = rpc_status.from_call(exc)
    except ValueError:  # a status in the metadata that disagrees with the call's own
        return ()
    if status is None:
        return ()
    decoded = []
    for packed in status.details:
        kind = getattr(error_details_pb2, packed.TypeName().rpartition(".")[2], None)
        if kind is not None and packed.Is(kind.DESCRIPTOR):
            message = kind()
            packed.Unpack(message)
            decoded.append(message)
    return tuple(decoded)


def error_from_rpc(exc: grpc.RpcError) -> ChunkwiseError:
    """The error for a failed gRPC call; its status and details, when it carries them."""
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if callable(code) and callable(details):
        status = code()
        message = details() or (status.name if status is not None else "call failed")
        if status is None:
            return Unknown(message)
        return error_for_status(status, message, _status_details(exc))
    return Unknown(str(exc) or type(exc).__name__)


@contextlib.contextmanager
def map_grpc_errors() -> Iterator[None]:
    """Raise a ChunkwiseError for any gRPC failure in the block, chained to the original.

    The one boundary: unary calls and stream reads run inside it, after their retries.
    Most specific first: a call that failed with a status, then an asyncio call that was
    already finished when used.
    """
    try:
        yield
    except grpc.RpcError as exc:
        raise error_from_rpc(exc) from exc
    except asyncio.InvalidStateError as exc:
        raise ProtocolError(f"the stream was already finished: {exc}") from exc
