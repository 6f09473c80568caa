"""The graceful stop's first half: refuse new calls with UNAVAILABLE, let open ones finish.

gRPC's own stop refuses calls that arrive after it, but a call that reached gRPC core just
before, and was not yet handed to the application, is cancelled: its client sees CANCELLED
or INTERNAL, not the UNAVAILABLE it knows to retry elsewhere. Under load such calls can
queue in core for a second or more. So the drain is done here, with gRPC still running:
once the gate is closed, every new call to a gated service is answered UNAVAILABLE by the
application, the calls already open run on, and gRPC is stopped only when none is open any
more and no new one was refused for a moment (`wait_until_idle`), or at the grace period.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

_MESSAGE = "the server is shutting down; retry on another instance"

_Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


async def _refuse(request: object, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAVAILABLE, _MESSAGE)


def _codecs(handler: grpc.RpcMethodHandler) -> dict[str, Any]:
    return {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    codecs = _codecs(handler)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_refuse, **codecs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_refuse, **codecs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_refuse, **codecs)
    return grpc.unary_unary_rpc_method_handler(_refuse, **codecs)


class DrainGate(grpc.aio.ServerInterceptor):
    """Counts the open calls to the named services; after `close()` refuses new ones."""

    def __init__(self, services: tuple[str, ...]) -> None:
        self._prefixes = tuple(f"/{service}/" for service in services)
        self.closed = False
        self.open_calls = 0
        self._last_refusal = 0.0
        self._changed = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self._last_refusal = time.monotonic()

    async def wait_until_idle(self, quiet: float, deadline: float) -> None:
        """After `close()`: wait until no call is open and none was refused for `quiet`
        seconds, or until the `deadline` (a time.monotonic() value)."""
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if self.open_calls:
                wake = deadline
            else:
                wake = min(self._last_refusal + quiet, deadline)
                if wake <= now:
                    return
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), wake - now)
            except TimeoutError:
                pass

    async def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(self._prefixes):
            return handler
        if self.closed:
            self._last_refusal = time.monotonic()
            self._changed.set()
            return _refusing(handler)
        return self._counted(handler)

    def _counted(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        codecs = _codecs(handler)
        if handler.request_streaming and handler.response_streaming:
            stream = handler.stream_stream

            # A coroutine, not an async generator around the handler's: the handler reads
            # and writes through its context, so wrapping it costs nothing per message.
            async def stream_stream(requests: Any, context: Any) -> None:
                self._opened()
                try:
                    await stream(requests, context)
                finally:
                    self._ended()

            return grpc.stream_stream_rpc_method_handler(stream_stream, **codecs)
        if not handler.request_streaming and not handler.response_streaming:
            unary = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                self._opened()
                try:
                    return await unary(request, context)
                finally:
                    self._ended()

            return grpc.unary_unary_rpc_method_handler(unary_unary, **codecs)
        # chunkwise has no calls of the other two shapes; counting them is not needed.
        return handler

    def _opened(self) -> None:
        self.open_calls += 1

    def _ended(self) -> None:
        self.open_calls -= 1
        self._changed.set()
