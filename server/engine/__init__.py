"""The streaming engine: chunk tracking, incremental JSON reading, processors. No I/O."""

from ._errors import (
    EngineError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProcessorFailed,
    ResourceExhausted,
)
from ._limits import Limits
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
from ._parser import StreamingParser
from ._results import ChunkResult, TextInfo

__all__ = [
    "Append",
    "ChunkResult",
    "End",
    "EngineError",
    "FailedPrecondition",
    "FileDelta",
    "InvalidArgument",
    "JsonOp",
    "Limits",
    "NotFound",
    "Output",
    "PartialJson",
    "ProcessorFailed",
    "ReasoningFile",
    "ReasoningText",
    "ResourceExhausted",
    "Set",
    "StreamingParser",
    "TextInfo",
]
