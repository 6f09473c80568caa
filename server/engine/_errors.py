"""The engine's errors.

    EngineError            (status_hint: the gRPC status name a servicer should send)
    ├── InvalidArgument    bad input: empty or oversized id, unknown processor or mode,
    │                      text that cannot become JSON, nesting past the limit
    ├── ResourceExhausted  a size or count limit would be passed
    ├── FailedPrecondition a request names another processor or mode than the id's own
    ├── NotFound           the id is not tracked
    └── ProcessorFailed    a processor raised what it should not (a bug in it): the chunk's
                           text is tracked and the processor shows nothing more for the id;
                           the exception is the error's __cause__, for the server's log

Every error means "nothing changed", except an InvalidArgument for invalid JSON and a
ProcessorFailed: those are reported beside a chunk whose text was tracked. Any other
exception out of the engine is a bug.
"""

from __future__ import annotations


class EngineError(Exception):
    status_hint = "UNKNOWN"

    def __init__(self, message: str, *, subject: str = "") -> None:
        super().__init__(message)
        self.message = message
        #: What the error is about, for the status details a servicer can add: the request
        #: field of an InvalidArgument, the id of a NotFound, the setting of a
        #: ResourceExhausted. Empty when there is no one thing.
        self.subject = subject


class InvalidArgument(EngineError):
    status_hint = "INVALID_ARGUMENT"


class ResourceExhausted(EngineError):
    status_hint = "RESOURCE_EXHAUSTED"


class FailedPrecondition(EngineError):
    status_hint = "FAILED_PRECONDITION"


class NotFound(EngineError):
    status_hint = "NOT_FOUND"


class ProcessorFailed(EngineError):
    status_hint = "INTERNAL"
