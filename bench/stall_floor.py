"""The floor for the loop-stall bench: a bare grpc.aio server that sends what chunkwise
sends under that bench's load, answers of the same sizes, and does no engine work.

Whatever an unrelated stream waits for on this server is gRPC's own cost of moving the
load's megabytes through one Python process: reading 1 MiB requests, writing the 7 MB
answers of dense JSON and the multi-megabyte texts of GetCompleteText. Run beside chunkwise
in the same session, it says how much of the loaded p99 any server built on grpc.aio
would have, and how much is chunkwise's own.

- ProcessChunks: each chunk is answered with the bytes chunkwise's engine made for the
  first chunk of that size, start and processor (made once, on a thread, for an id whose
  text made it valid, then reused). A chunk of 64 KiB or more is answered after as long
  as the engine took to make its answer, one such chunk at a time as chunkwise runs them:
  the load's streams wait for their answers, so without the wait this server would be
  sent a hundred times the megabytes chunkwise is. The wait is a sleep: no CPU.
- GetCompleteText: an answer of the id's text size (counted in characters: the bench's
  text is ASCII), made once per size and reused; NOT_FOUND for an id with no text.
- ClearChunk forgets the id's size.

    python -m bench.stall_floor --host 127.0.0.1 --port 0
prints `floor listening on HOST:PORT` once it serves, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import sys
import time

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc

from server.engine import Mode
from server.servicer import ONE_AT_A_TIME_CHARS, add_to_server
from server.streams import Streams

from . import bare_server

#: The part of a big chunk that tells one workload's chunk from another's.
_KEY_CHARS = 64


class FloorService(pb_grpc.StreamingParserServicer):
    def __init__(self) -> None:
        # Per id: its processor and its text's size.
        self._ids: dict[str, tuple[str, int]] = {}
        self._chunk_answers: dict[tuple[int, str, str], asyncio.Future[tuple[bytes, float]]] = {}
        self._big_turn = asyncio.Lock()
        self._text_answers: dict[tuple[int, str], bytes] = {}

    async def ProcessChunks(self, requests: object, context: grpc.aio.ServicerContext) -> None:
        while (request := await context.read()) is not grpc.aio.EOF:
            chunk = request.chunk
            chunk_id = request.chunk_id
            processor, size = self._ids.get(chunk_id, (request.processor_type or "text", 0))
            self._ids[chunk_id] = (processor, size + len(chunk))
            await context.write(await self._answer(chunk_id, chunk, processor))

    async def GetCompleteText(
        self, request: pb.GetCompleteTextRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        processor, size = self._ids.get(request.chunk_id, ("", 0))
        if not size:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not tracked")
        key = (size, processor)
        answer = self._text_answers.get(key)
        if answer is None:
            answer = pb.GetCompleteTextResponse(
                text="x" * size, processor_type=processor
            ).SerializeToString()
            self._text_answers[key] = answer
        return answer

    async def ClearChunk(
        self, request: pb.ClearChunkRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClearChunkResponse:
        return pb.ClearChunkResponse(cleared=self._ids.pop(request.chunk_id, None) is not None)

    async def _answer(self, chunk_id: str, chunk: str, processor: str) -> bytes:
        key = (len(chunk), chunk[:_KEY_CHARS], processor)
        made = self._chunk_answers.get(key)
        if made is None:
            loop = asyncio.get_running_loop()
            made = loop.run_in_executor(None, engine_answer, chunk_id, chunk, processor)
            self._chunk_answers[key] = made
        answer, seconds = await made
        if len(chunk) >= ONE_AT_A_TIME_CHARS:
            async with self._big_turn:
                await asyncio.sleep(seconds)
        return answer


def engine_answer(chunk_id: str, chunk: str, processor: str) -> tuple[bytes, float]:
    """chunkwise's answer to `chunk` sent, in APPEND mode, to an id whose text so far is
    what makes it valid (`[` for a JSON processor whose chunk does not open a value,
    nothing otherwise), and the seconds its engine took to make it."""
    streams = Streams()
    if processor != "text" and not chunk.lstrip().startswith(("[", "{")):
        streams.answer(chunk_id, "[", processor_type=processor, mode=Mode.APPEND)
    started = time.perf_counter()
    answer = streams.answer(chunk_id, chunk, processor_type=processor, mode=Mode.APPEND)
    seconds = time.perf_counter() - started
    assert answer is not None
    return answer.response, seconds


async def start(host: str = "127.0.0.1", port: int = 0) -> tuple[grpc.aio.Server, int]:
    # chunkwise's own limits on message sizes, so that both servers send the same answers.
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ]
    )
    # Registered as chunkwise registers its servicer: the same serializers, none for the
    # answers made as bytes.
    add_to_server(FloorService(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound


def main(argv: list[str] | None = None) -> int:
    return bare_server.main("bench.stall_floor", "floor", start, argv)


if __name__ == "__main__":
    sys.exit(main())
