"""The StreamingParser gRPC service: request → engine call → response, nothing more.

Errors come in two kinds, as in the engine's error tree. An EngineError is expected: inside
ProcessChunks it becomes that response's `error` and the stream goes on; in a unary call it
becomes the call's status. Any other exception is a bug in chunkwise: it is logged (its type
and traceback, never its message, which may quote the caller's text) and the caller sees
INTERNAL with a generic message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from time import perf_counter
from typing import Literal, NoReturn, Protocol, TypeVar, overload

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc

from server import _convert, _wire
from server._gc import collection_held_off, free_gradually
from server._logging import get_logger, log_event
from server.auth import current_namespace
from server.engine import ChunkResult, EngineError, InvalidArgument, PartialJson, ProcessorFailed
from server.metrics import ServiceMetrics
from server.streams import Streams

_log = get_logger("servicer")

_T = TypeVar("_T")

#: Chunks of at least this many characters are processed on a worker thread, so that the
#: event loop keeps answering other streams meanwhile. Engine time per character varies
#: with the content: `bench/loop_latency.py` measured about 0.01 ms for 1 KiB of plain text
#: and 2 ms for 1 KiB of dense JSON (short strings in an array, the worst case), and a
#: thread hop at about 0.1 ms. At 1 KiB, a chunk run inline holds the loop at most ~2 ms,
#: while the token-sized chunks an LLM streams never pay for the hop.
OFFLOAD_CHARS = 1024

#: Chunks of at least this many characters are processed one at a time. Engine work holds
#: the GIL, so big chunks running side by side add no throughput, and each thread waiting
#: for the GIL is one more the event loop competes with: with four workers on megabyte
#: chunks a thread waking from a 0.5 ms sleep waited 8.6 ms at the median and 46 ms at
#: p99, with one 1.2 ms and 4.2 ms. Smaller chunks still run beside them, so they never
#: queue behind a megabyte one (about a second of engine time for dense JSON).
ONE_AT_A_TIME_CHARS = 64 * 1024

#: A stream's access line counts its distinct chunk ids up to this many.
_COUNTED_IDS = 128

_INTERNAL_MESSAGE = "internal error; the server log has the details"


class StreamingParserServicer(pb_grpc.StreamingParserServicer):
    def __init__(
        self,
        streams: Streams,
        executor: Executor,
        *,
        offload_chars: int = OFFLOAD_CHARS,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        """`metrics`, when given, counts every request and stream (--metrics-port)."""
        self._streams = streams
        self._executor = executor
        self._offload_chars = offload_chars
        self._metrics = metrics
        # Waited for on the loop, not on a worker: big chunks waiting their turn hold no
        # thread, so smaller chunks and reads still find one.
        self._big_turn = asyncio.Semaphore(1)

    async def ProcessChunks(
        self,
        request_iterator: AsyncIterator[pb.ProcessChunksRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        # read() and write() rather than `async for` and `yield`: each async generator layer
        # costs a few microseconds per message, a measurable share of a 16-byte chunk's cost.
        loop = asyncio.get_running_loop()
        # Set by server.auth.AuthInterceptor, which has let the call in. Read here, in the
        # call's task: the workers that chunks go to do not see it.
        namespace = current_namespace.get()
        # What the access line reports: a few integer additions a message. Bytes in are
        # the request messages' serialized sizes (measured on a worker for offloaded chunks,
        # where a megabyte costs ~0.1 ms), bytes out the responses'.
        count = bytes_in = bytes_out = 0
        # Hashes of the distinct chunk ids, the first _COUNTED_IDS of them: a bounded set,
        # so a stream touching a million ids holds a few kilobytes for this, not the ids.
        ids: set[int] = set()
        status = "UNKNOWN"
        started = time.monotonic()
        # Read once, up front: grpc.aio crashes the process (SIGSEGV) when peer() is called
        # after the client has cancelled the call.
        peer = context.peer()
        log_event(_log, logging.DEBUG, "stream opened", peer=peer)
        metrics = self._metrics
        if metrics is not None:
            metrics.stream_opened()
        try:
            # Each response is written before the next request is read: per-stream order.
            while (request := await context.read()) is not grpc.aio.EOF:
                count += 1
                if len(ids) < _COUNTED_IDS:
                    ids.add(hash(request.chunk_id))
                # A final response carries the whole text and output, so it is built off
                # the loop too, however small its chunk. A small chunk whose id is busy
                # (a worker holds it) goes to a worker as well: the loop never waits.
                inline = None
                # Each access to `chunk` builds a new str: for a megabyte, 0.1 ms of the loop.
                size = len(request.chunk)
                if not request.final and size < self._offload_chars:
                    inline = self._answer(request, namespace, False)
                if inline is not None:
                    response, request_bytes = inline, request.ByteSize()
                elif size >= ONE_AT_A_TIME_CHARS:
                    response, request_bytes = await self._answer_in_turn(request, namespace)
                else:
                    response, request_bytes = await loop.run_in_executor(
                        self._executor, self._answer_on_worker, request, namespace
                    )
                bytes_in += request_bytes
                await context.write(response)
                bytes_out += len(response)
            # grpc.aio may end the reads of a stream the client cancelled as if it had
            # half-closed it: such a stream is logged OK too.
            status = "OK"
        except asyncio.CancelledError:
            # The client cancelled, its deadline passed, or the server stopped at the end
            # of its grace period: all the same from here.
            status = "CANCELLED"
            raise
        finally:
            if metrics is not None:
                metrics.stream_closed()
            log_event(
                _log,
                logging.INFO,
                "stream ended",
                peer=peer,
                # Distinct ids, counted up to _COUNTED_IDS: that many means that or more.
                chunk_ids=len(ids),
                messages=count,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                seconds=round(time.monotonic() - started, 3),
                status=status,
            )

    async def _answer_in_turn(
        self, request: pb.ProcessChunksRequest, namespace: str
    ) -> tuple[bytes, int]:
        """`_answer_on_worker` once no other big chunk is on a worker."""
        turn = self._big_turn
        await turn.acquire()
        try:
            work = self._executor.submit(self._answer_on_worker, request, namespace)
        except BaseException:
            turn.release()
            raise
        # The turn ends when the work does, not when this stream stops waiting for it: a
        # cancelled stream's chunk may still be running.
        loop = asyncio.get_running_loop()
        work.add_done_callback(lambda _: _call_soon(loop, turn.release))
        return await asyncio.wrap_future(work)

    def _answer_on_worker(
        self, request: pb.ProcessChunksRequest, namespace: str
    ) -> tuple[bytes, int]:
        """The response and the request's serialized size, both made here, off the loop."""
        with collection_held_off():
            return self._answer(request, namespace, True), request.ByteSize()

    @overload
    def _answer(
        self, request: pb.ProcessChunksRequest, namespace: str, wait: Literal[True]
    ) -> bytes: ...

    @overload
    def _answer(
        self, request: pb.ProcessChunksRequest, namespace: str, wait: Literal[False]
    ) -> bytes | None: ...

    def _answer(self, request: pb.ProcessChunksRequest, namespace: str, wait: bool) -> bytes | None:
        """The serialized response: ProcessChunks is registered without a response
        serializer (see `add_to_server`). None, with nothing done, when `wait` is False
        and the id is busy."""
        metrics = self._metrics
        try:
            try:
                mode = _convert.delta_mode(request.mode)
            except InvalidArgument as exc:
                refused = ChunkResult(request.chunk_id, request.sequence, error=exc)
                self._log_refusal(request.chunk_id, request.sequence, exc)
                if metrics is not None:
                    metrics.refused(request, exc.status_hint)
                return _wire.chunk_response(refused)
            started = perf_counter() if metrics is not None else 0.0
            answer = self._streams.answer(
                request.chunk_id,
                request.chunk,
                processor_type=request.processor_type,
                mode=mode,
                final=request.final,
                sequence=request.sequence,
                namespace=namespace,
                wait=wait,
            )
            if answer is None:
                return None
            if metrics is not None:
                metrics.chunk(request, answer, perf_counter() - started)
            result = answer.result
            error = result.error
            if error is not None:
                if type(error) is ProcessorFailed:
                    log_event(
                        _log,
                        logging.ERROR,
                        "processor failed",
                        exc_info=error.__cause__,
                        rpc="ProcessChunks",
                    )
                elif not (result.delta or result.final or result.duplicate):
                    # Refused: nothing was applied. (An error beside applied text, invalid
                    # JSON, comes with the delta that made it or on a final; a duplicate
                    # repeats its first response.)
                    self._log_refusal(request.chunk_id, request.sequence, error)
            if type(result.output) is PartialJson:
                free_gradually(result.output, "deltas")
            return answer.response
        except Exception:
            log_event(_log, logging.ERROR, "bug in call", exc_info=True, rpc="ProcessChunks")
            if metrics is not None:
                metrics.refused(request, grpc.StatusCode.INTERNAL.name)
            # Not `final`, even for a final request: like every refusal, it leaves the id
            # open for the client to read or clear.
            return pb.ProcessChunksResponse(
                chunk_id=request.chunk_id,
                sequence=request.sequence,
                error=_convert.error_message(grpc.StatusCode.INTERNAL, _INTERNAL_MESSAGE),
            ).SerializeToString()

    def _log_refusal(self, chunk_id: str, sequence: int, error: EngineError) -> None:
        # An id refused for its length could be megabytes: the line keeps what a valid id
        # may hold.
        limit = self._streams.limits.max_id_bytes
        if len(chunk_id) > limit:
            chunk_id = chunk_id[:limit] + "..."
        log_event(
            _log,
            logging.INFO,
            "message refused",
            chunk_id=chunk_id,
            sequence=sequence,
            code=_convert.status_code(error).name,
            # The field or setting the refusal is about ("--max-memory-bytes"), never the
            # error's message: a message may quote the caller's text.
            subject=error.subject,
        )

    async def GetCompleteText(
        self, request: pb.GetCompleteTextRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        namespace = current_namespace.get()
        # On a worker: it waits for a chunk of the id in flight, and copies the whole text.
        # Encoded there too (it is registered without a response serializer): megabytes
        # copied on the loop would hold every other stream up meanwhile.
        return await _unary(
            context,
            "GetCompleteText",
            lambda: _wire.complete_text_response(
                self._streams.complete_text(request.chunk_id, namespace=namespace)
            ),
            self._executor,
        )

    async def ClearChunk(
        self, request: pb.ClearChunkRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClearChunkResponse:
        namespace = current_namespace.get()
        return await _unary(
            context,
            "ClearChunk",
            lambda: pb.ClearChunkResponse(
                cleared=self._streams.clear(request.chunk_id, namespace=namespace)
            ),
        )

    async def ListProcessors(
        self, request: pb.ListProcessorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListProcessorsResponse:
        return await _unary(
            context,
            "ListProcessors",
            lambda: _convert.processors_response(self._streams.processors()),
        )


def add_to_server(servicer: pb_grpc.StreamingParserServicer, server: grpc.aio.Server) -> None:
    """What the generated `add_StreamingParserServicer_to_server` does, except that
    ProcessChunks and GetCompleteText have no response serializer: they write the bytes
    they made with `server/_wire.py` (GetCompleteText on a worker)."""
    # Written out, not the generated function: that one sets every response serializer to
    # the message's SerializeToString, which raises TypeError on bytes, and registers its
    # table itself, leaving no way to change an entry first.
    handlers = {
        "ProcessChunks": grpc.stream_stream_rpc_method_handler(
            servicer.ProcessChunks,
            request_deserializer=pb.ProcessChunksRequest.FromString,
            response_serializer=None,
        ),
        "GetCompleteText": grpc.unary_unary_rpc_method_handler(
            servicer.GetCompleteText,
            request_deserializer=pb.GetCompleteTextRequest.FromString,
            response_serializer=None,
        ),
        "ClearChunk": grpc.unary_unary_rpc_method_handler(
            servicer.ClearChunk,
            request_deserializer=pb.ClearChunkRequest.FromString,
            response_serializer=pb.ClearChunkResponse.SerializeToString,
        ),
        "ListProcessors": grpc.unary_unary_rpc_method_handler(
            servicer.ListProcessors,
            request_deserializer=pb.ListProcessorsRequest.FromString,
            response_serializer=pb.ListProcessorsResponse.SerializeToString,
        ),
    }
    service = pb.DESCRIPTOR.services_by_name["StreamingParser"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """`callback` on `loop` from any thread; nothing once the loop is closed (the server
    stopped while a chunk was still on a worker)."""
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:
        pass


class _AbortingContext(Protocol):
    """grpc.aio.ServicerContext as `_unary` uses it. grpc ships no annotations; its own
    source declares abort() NoReturn, as here: it always raises."""

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str,
        trailing_metadata: tuple[tuple[str, bytes], ...] = (),
    ) -> NoReturn: ...


async def _unary(
    context: _AbortingContext,
    rpc: str,
    call: Callable[[], _T],
    executor: Executor | None = None,
) -> _T:
    """`call()`'s answer, run on `executor` when one is given; its EngineError becomes the
    call's status."""
    # abort() raises, and its exception is an Exception too: it must stay outside the try.
    try:
        if executor is None:
            return call()
        return await asyncio.get_running_loop().run_in_executor(executor, call)
    except EngineError as error:
        code, message = _convert.status_code(error), error.message
        details = _convert.status_details(error)
    except Exception:
        log_event(_log, logging.ERROR, "bug in call", exc_info=True, rpc=rpc)
        code, message, details = grpc.StatusCode.INTERNAL, _INTERNAL_MESSAGE, ()
    await context.abort(code, message, details)
