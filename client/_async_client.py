"""The asyncio client: the same methods as ``Client``, in the same order, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import cast

import grpc
from chunkwise.v1 import streaming_pb2

from . import _convert
from ._base import BaseClient, BaseStream
from ._errors import NotFound, ProtocolError, map_grpc_errors
from ._feed import FeedPlan
from ._models import ChunkUpdate, Mode, ProcessorInfo, TextInfo


class AsyncClient(BaseClient):
    """An asyncio chunkwise client over one grpc.aio channel; arguments as for ``Client``."""

    _insecure_channel = staticmethod(grpc.aio.insecure_channel)
    _secure_channel = staticmethod(grpc.aio.secure_channel)
    _default_sleep = staticmethod(asyncio.sleep)
    _sleep: Callable[[float], Awaitable[None]]

    def stream(self, *, raise_on_error: bool = False, timeout: float | None = None) -> AsyncStream:
        """A ProcessChunks session: ``await send(...)``, ``async for`` the updates."""
        return AsyncStream(self, raise_on_error=raise_on_error, timeout=timeout)

    async def process(
        self,
        chunk_id: str,
        chunks: Iterable[str] | AsyncIterable[str],
        *,
        processor_type: str = "",
        mode: Mode | None = None,
        final: bool = True,
        raise_on_error: bool = False,
    ) -> AsyncIterator[ChunkUpdate]:
        """As ``Client.process``; ``chunks`` may be an async iterable, read in a task."""
        plan = FeedPlan(chunk_id, chunks, processor_type=processor_type, mode=mode, final=final)
        async with self.stream(raise_on_error=raise_on_error) as stream:
            feeding = _Feeding()
            feeder = asyncio.ensure_future(_feed(stream, feeding, plan))
            try:
                while await stream._wait_for_unanswered(feeding):
                    yield await stream.receive()
            finally:
                if not feeder.done():
                    feeder.cancel()
                    await asyncio.gather(feeder, return_exceptions=True)
            await feeder

    async def get_complete_text(self, chunk_id: str) -> TextInfo:
        """As ``Client.get_complete_text``; the other calls too."""
        request = streaming_pb2.GetCompleteTextRequest(chunk_id=chunk_id)
        return _convert.text_info(await self._unary(self._stub.GetCompleteText, request))

    async def clear_chunk(self, chunk_id: str) -> bool:
        request = streaming_pb2.ClearChunkRequest(chunk_id=chunk_id)
        return (await self._unary(self._stub.ClearChunk, request)).cleared

    async def list_processors(self) -> list[ProcessorInfo]:
        request = streaming_pb2.ListProcessorsRequest()
        return _convert.processors(await self._unary(self._stub.ListProcessors, request))

    async def health(self, service: str = "") -> str:
        try:
            response = await self._unary(self._health.Check, self._health_request(service))
        except NotFound:
            return "SERVICE_UNKNOWN"
        return self._health_status(response)

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _unary(self, method, request):
        failures = 0
        with map_grpc_errors():
            while True:
                try:
                    return await method(request, timeout=self.timeout, metadata=self._metadata)
                except grpc.RpcError as exc:
                    failures += 1
                    delay = self._retry_delay(exc, failures, self._call_name(request))
                    if delay is None:
                        raise
                await self._sleep(delay)


class AsyncStream(BaseStream):
    """One ProcessChunks stream over asyncio; use it with ``async with``. As ``Stream``."""

    def __init__(self, client: AsyncClient, *, raise_on_error: bool, timeout: float | None) -> None:
        super().__init__(client, raise_on_error=raise_on_error, timeout=timeout)
        self._client: AsyncClient = client
        # Held while a request is added and written, and while a new call is opened and
        # the unanswered requests are written to it, so that no request misses the new call.
        self._lock = asyncio.Lock()
        # Wakes a reader waiting for a request to be added. Apart from the write lock: a
        # write can wait for flow control, which only reading frees.
        self._sent = asyncio.Condition()
        self._call: grpc.aio.StreamStreamCall | None = None

    async def __aenter__(self) -> AsyncStream:
        async with self._lock:
            await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        else:
            self.cancel()

    async def send(
        self,
        chunk_id: str,
        chunk: str,
        *,
        processor_type: str = "",
        mode: Mode | None = None,
        final: bool = False,
    ) -> int:
        """Write one chunk; returns its sequence number. As ``Stream.send``."""
        async with self._lock:
            if self._call is None:
                raise RuntimeError("the stream is not open: use it in an 'async with' block")
            request = self._new_request(chunk_id, chunk, processor_type, mode, final)
            async with self._sent:
                self._sent.notify_all()
            await self._write(request)
            return request.sequence

    async def receive(self) -> ChunkUpdate:
        """The next update. A RuntimeError if none is due."""
        if self._call is None:
            raise RuntimeError("the stream is not open: use it in an 'async with' block")
        if not self._outstanding:
            raise RuntimeError("no update is due: every request sent has been answered")
        with map_grpc_errors():
            while True:
                try:
                    response = await self._call.read()
                except grpc.RpcError as exc:
                    await self._resume_or_raise(exc)
                    continue
                # read() raises for a failed call, so EOF means the server ended it cleanly.
                if response is grpc.aio.EOF:
                    raise ProtocolError(
                        f"the stream ended with {len(self._outstanding)} requests unanswered"
                    )
                return self._update(response)

    def __aiter__(self) -> AsyncIterator[ChunkUpdate]:
        return self._updates()

    async def _updates(self) -> AsyncIterator[ChunkUpdate]:
        while self._outstanding:
            yield await self.receive()

    async def close(self) -> None:
        """Stop sending, wait for the answers still due, and end the stream."""
        if self._call is None:
            return
        async with self._lock:
            self._half_closed = True
            await self._done_writing()
        try:
            async for _ in self:
                pass
            while (response := await self._call.read()) is not grpc.aio.EOF:
                raise ProtocolError(f"an answer for {response.chunk_id!r} came unasked")
        except grpc.RpcError:
            # Every request is answered; how the server ends the stream changes nothing.
            pass
        finally:
            self.cancel()

    def cancel(self) -> None:
        """End the stream at once; answers still due are lost."""
        if self._call is not None:
            self._call.cancel()
            self._call = None

    async def _open(self) -> None:
        """A new call carrying every unanswered request. Holds the lock."""
        if self._call is not None:
            self._call.cancel()
        self._call = self._client._stub.ProcessChunks(
            timeout=self._timeout, metadata=self._client._metadata
        )
        for request in self._outstanding.resend():
            await self._write(request)
        if self._half_closed:
            await self._done_writing()

    async def _write(self, request: streaming_pb2.ProcessChunksRequest) -> None:
        try:
            # Called with a call open (send checks, _open sets it); per message, so no cast.
            await self._call.write(request)  # type: ignore[union-attr]
        except (grpc.RpcError, asyncio.InvalidStateError):
            # The call has ended; reading reports how, and resends this request if it can.
            pass

    async def _done_writing(self) -> None:
        try:
            # Called with a call open: by close, which checks, and by _open, which sets it.
            await cast(grpc.aio.StreamStreamCall, self._call).done_writing()
        except (grpc.RpcError, asyncio.InvalidStateError):
            pass

    async def _resume_or_raise(self, exc: grpc.RpcError) -> None:
        delay = self._retry_delay(exc)
        if delay is None:
            raise exc
        await self._client._sleep(delay)
        async with self._lock:
            await self._open()

    async def _wait_for_unanswered(self, feeding: _Feeding) -> bool:
        """Whether an update is due, waiting while the feeder may still send."""
        async with self._sent:
            await self._sent.wait_for(lambda: bool(self._outstanding) or feeding.done)
            return bool(self._outstanding)


class _Feeding:
    done = False


async def _feed(
    stream: AsyncStream,
    feeding: _Feeding,
    plan: FeedPlan[Iterable[str] | AsyncIterable[str]],
) -> None:
    """Sends the chunks of ``AsyncClient.process``; wakes the reader when done."""
    try:
        if isinstance(plan.chunks, AsyncIterable):
            async for chunk in plan.chunks:
                await stream.send(**plan.send(chunk)._asdict())
        else:
            for chunk in plan.chunks:
                await stream.send(**plan.send(chunk)._asdict())
        closing = plan.closing()
        if closing is not None:
            await stream.send(**closing._asdict())
    finally:
        feeding.done = True
        async with stream._sent:
            stream._sent.notify_all()
