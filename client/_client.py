"""The blocking client."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Protocol, cast

import grpc
from chunkwise.v1 import streaming_pb2

from . import _convert
from ._base import BaseClient, BaseStream
from ._errors import NotFound, ProtocolError, map_grpc_errors
from ._feed import FeedPlan
from ._models import ChunkUpdate, Mode, ProcessorInfo, TextInfo

_END = object()


class _Responses(Protocol):
    """What ProcessChunks returns, as ``Stream`` uses it: grpc's call object (grpc ships no
    annotations), an iterator of the answers that can be cancelled."""

    def __iter__(self) -> Iterator[streaming_pb2.ProcessChunksResponse]: ...

    def __next__(self) -> streaming_pb2.ProcessChunksResponse: ...

    def cancel(self) -> bool: ...


def _requests_from(pipe: queue.Queue) -> Iterator[streaming_pb2.ProcessChunksRequest]:
    while (request := pipe.get()) is not _END:
        yield request


class Client(BaseClient):
    """A blocking chunkwise client over one gRPC channel; ``__init__`` lists its arguments."""

    _insecure_channel = staticmethod(grpc.insecure_channel)
    _secure_channel = staticmethod(grpc.secure_channel)
    _default_sleep = staticmethod(time.sleep)
    _sleep: Callable[[float], None]

    def stream(self, *, raise_on_error: bool = False, timeout: float | None = None) -> Stream:
        """A ProcessChunks session: ``send`` chunks, iterate for their updates.

        ``raise_on_error``  raise a per-message error instead of putting it on ``update.error``
        ``timeout``         seconds for the whole stream; None: no limit
        """
        return Stream(self, raise_on_error=raise_on_error, timeout=timeout)

    def process(
        self,
        chunk_id: str,
        chunks: Iterable[str],
        *,
        processor_type: str = "",
        mode: Mode | None = None,
        final: bool = True,
        raise_on_error: bool = False,
    ) -> Iterator[ChunkUpdate]:
        """Send every chunk for one id and yield each update as it arrives.

        With ``final`` the last chunk of a list or tuple is marked final; any other iterable
        is followed by a final chunk that adds nothing (an empty one, or for "snapshot" the
        last one again). The chunks are read on a thread of their own, so a slow generator
        (an LLM's output, say) gets each update as soon as its chunk is answered.
        """
        plan = FeedPlan(chunk_id, chunks, processor_type=processor_type, mode=mode, final=final)
        with self.stream(raise_on_error=raise_on_error) as stream:
            feeder = _Feeder(stream, plan)
            feeder.start()
            try:
                while stream._wait_for_unanswered(feeder):
                    yield stream.receive()
            finally:
                feeder.stop()
            feeder.reraise()

    def get_complete_text(self, chunk_id: str) -> TextInfo:
        """The text of an id so far, its last sequence and processor; NotFound if untracked."""
        request = streaming_pb2.GetCompleteTextRequest(chunk_id=chunk_id)
        return _convert.text_info(self._unary(self._stub.GetCompleteText, request))

    def clear_chunk(self, chunk_id: str) -> bool:
        """Forget an id. True when something was tracked; clearing twice is fine."""
        request = streaming_pb2.ClearChunkRequest(chunk_id=chunk_id)
        return self._unary(self._stub.ClearChunk, request).cleared

    def list_processors(self) -> list[ProcessorInfo]:
        """The processors the server knows, sorted by name."""
        request = streaming_pb2.ListProcessorsRequest()
        return _convert.processors(self._unary(self._stub.ListProcessors, request))

    def health(self, service: str = "") -> str:
        """The server's health for ``service``: "SERVING", "NOT_SERVING", or
        "SERVICE_UNKNOWN" for a service the server does not know."""
        try:
            response = self._unary(self._health.Check, self._health_request(service))
        except NotFound:
            return "SERVICE_UNKNOWN"
        return self._health_status(response)

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _unary(self, method: grpc.UnaryUnaryMultiCallable, request):
        failures = 0
        with map_grpc_errors():
            while True:
                try:
                    return method(request, timeout=self.timeout, metadata=self._metadata)
                except grpc.RpcError as exc:
                    failures += 1
                    delay = self._retry_delay(exc, failures, self._call_name(request))
                    if delay is None:
                        raise
                self._sleep(delay)


class Stream(BaseStream):
    """One ProcessChunks stream; use it as a context manager.

    ``send`` queues a chunk and returns its sequence number at once; iterating yields the
    updates for everything sent so far, in order, and stops when all are answered. When the
    stream drops with UNAVAILABLE, the client waits, opens a new one and resends what was not
    answered, with the same sequence numbers.

    Leaving the ``with`` block normally closes the sending side and waits for the answers
    still due (their updates are dropped: iterate first to see them); leaving it on an
    exception cancels the stream.
    """

    def __init__(self, client: Client, *, raise_on_error: bool, timeout: float | None) -> None:
        super().__init__(client, raise_on_error=raise_on_error, timeout=timeout)
        self._client: Client = client
        self._condition = threading.Condition()
        self._pipe: queue.Queue | None = None
        self._call: _Responses | None = None

    def __enter__(self) -> Stream:
        with self._condition:
            self._open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.cancel()

    def send(
        self,
        chunk_id: str,
        chunk: str,
        *,
        processor_type: str = "",
        mode: Mode | None = None,
        final: bool = False,
    ) -> int:
        """Queue one chunk; returns its sequence number. Never blocks.

        ``processor_type``  "" means the id's own ("text" for a new id)
        ``mode``            "auto", "append", "snapshot", or None for the id's own
        ``final``           the last chunk: its update carries the complete text
        """
        with self._condition:
            if self._pipe is None:
                raise RuntimeError("the stream is not open: use it in a 'with' block")
            request = self._new_request(chunk_id, chunk, processor_type, mode, final)
            self._pipe.put(request)
            self._condition.notify_all()
            return request.sequence

    def receive(self) -> ChunkUpdate:
        """The next update; blocks until it arrives. A RuntimeError if none is due."""
        if self._call is None:
            raise RuntimeError("the stream is not open: use it in a 'with' block")
        if not self._outstanding:
            raise RuntimeError("no update is due: every request sent has been answered")
        with map_grpc_errors():
            while True:
                try:
                    response = next(self._call)
                except StopIteration:
                    raise ProtocolError(
                        f"the stream ended with {len(self._outstanding)} requests unanswered"
                    ) from None
                except grpc.RpcError as exc:
                    self._resume_or_raise(exc)
                    continue
                with self._condition:
                    return self._update(response)

    def __iter__(self) -> Iterator[ChunkUpdate]:
        while self._outstanding:
            yield self.receive()

    def close(self) -> None:
        """Stop sending, wait for the answers still due, and end the stream."""
        if self._pipe is None:
            return
        with self._condition:
            self._half_closed = True
            self._pipe.put(_END)
        try:
            for _ in self:
                pass
            # Open: _open sets the call with the pipe.
            for response in cast(_Responses, self._call):
                raise ProtocolError(f"an answer for {response.chunk_id!r} came unasked")
        except grpc.RpcError:
            # Every request is answered; how the server ends the stream changes nothing.
            pass
        finally:
            self.cancel()

    def cancel(self) -> None:
        """End the stream at once; answers still due are lost."""
        with self._condition:
            if self._pipe is not None:
                self._pipe.put(_END)
                self._pipe = None
            if self._call is not None:
                self._call.cancel()

    def _open(self) -> None:
        """A new call carrying every unanswered request. Holds the condition's lock."""
        pipe: queue.Queue = queue.Queue()
        for request in self._outstanding.resend():
            pipe.put(request)
        if self._half_closed:
            pipe.put(_END)
        if self._pipe is not None:
            self._pipe.put(_END)
        self._pipe = pipe
        self._call = self._client._stub.ProcessChunks(
            _requests_from(pipe), timeout=self._timeout, metadata=self._client._metadata
        )

    def _resume_or_raise(self, exc: grpc.RpcError) -> None:
        with self._condition:
            delay = self._retry_delay(exc)
        if delay is None:
            raise exc
        self._client._sleep(delay)
        with self._condition:
            self._open()

    def _wait_for_unanswered(self, feeder: _Feeder) -> bool:
        """Whether an update is due, waiting while the feeder may still send."""
        with self._condition:
            while not self._outstanding and not feeder.done:
                self._condition.wait()
            return bool(self._outstanding)


class _Feeder(threading.Thread):
    """Sends the chunks of ``Client.process`` from a thread of its own."""

    def __init__(self, stream: Stream, plan: FeedPlan[Iterable[str]]) -> None:
        super().__init__(name=f"chunkwise-feeder-{plan.chunk_id}", daemon=True)
        self._stream = stream
        self._plan = plan
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self.done = False

    def run(self) -> None:
        try:
            self._feed()
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._error = exc
        finally:
            with self._stream._condition:
                self.done = True
                self._stream._condition.notify_all()

    def _feed(self) -> None:
        for chunk in self._plan.chunks:
            if self._stopped.is_set():
                return
            self._stream.send(**self._plan.send(chunk)._asdict())
        closing = self._plan.closing()
        if closing is not None and not self._stopped.is_set():
            self._stream.send(**closing._asdict())

    def stop(self) -> None:
        self._stopped.set()

    def reraise(self) -> None:
        if self._error is not None:
            raise self._error
