"""The streaming engine: one id's session (tracker, incremental JSON reader, processor).
Sans-I/O: no threads, clocks, logging, plugin discovery or wire format."""

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
from ._processors import BUILTIN_PROCESSORS, Processor, ProcessorFactory
from ._results import ChunkResult, TextInfo
from ._session import Session
from ._tracker import Mode

__all__ = [
    "BUILTIN_PROCESSORS",
    "Append",
    "ChunkResult",
    "End",
    "EngineError",
    "FailedPrecondition",
    "FileDelta",
    "InvalidArgument",
    "JsonOp",
    "Limits",
    "Mode",
    "NotFound",
    "Output",
    "PartialJson",
    "Processor",
    "ProcessorFactory",
    "ProcessorFailed",
    "ReasoningFile",
    "ReasoningText",
    "ResourceExhausted",
    "Session",
    "Set",
    "TextInfo",
]
