"""chunkwise's Python client: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

from client import Client

with Client("127.0.0.1:50051") as chunkwise:
    for update in chunkwise.process("call-1", ['{"plan_', 'markdown": "# Hi'],
                                    processor_type="plan", mode="append"):
        print(update.delta, update.output)
"""

from ._async_client import AsyncClient, AsyncStream
from ._client import Client, Stream
from ._errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    ChunkwiseError,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ProtocolError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    UnrepresentableValue,
)
from ._json import JsonBuilder
from ._models import (
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
from ._retry import Retry

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "AsyncStream",
    "Cancelled",
    "ChunkUpdate",
    "ChunkwiseError",
    "Client",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FileDelta",
    "Internal",
    "InvalidArgument",
    "JsonBuilder",
    "JsonDelta",
    "Mode",
    "NotFound",
    "OutOfRange",
    "Output",
    "PartialJson",
    "PermissionDenied",
    "ProcessorInfo",
    "ProtocolError",
    "ReasoningFile",
    "ReasoningText",
    "ResourceExhausted",
    "Retry",
    "Stream",
    "TextInfo",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "UnrepresentableValue",
    "UpdateError",
]
