"""The ceiling for the service bench: a bare grpc.aio server on the chunkwise.v1 service
that answers each ProcessChunksRequest with a ProcessChunksResponse of the same size (the
chunk comes back as the delta) and does nothing else. Whatever the service does beyond
this is its own cost.

    python -m bench.echo_server --host 127.0.0.1 --port 0
prints `echo listening on HOST:PORT` once it serves, and stops on SIGTERM or SIGINT. It runs
on the same kind of event loop as the service (`--event-loop`, as `python -m server`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import grpc
from chunkwise.v1 import streaming_pb2, streaming_pb2_grpc

from server.event_loop import EVENT_LOOPS, run


class EchoServicer(streaming_pb2_grpc.StreamingParserServicer):
    async def ProcessChunks(
        self,
        request_iterator: AsyncIterator[streaming_pb2.ProcessChunksRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[streaming_pb2.ProcessChunksResponse]:
        async for request in request_iterator:
            yield streaming_pb2.ProcessChunksResponse(
                chunk_id=request.chunk_id,
                sequence=request.sequence,
                delta=request.chunk,
                final=request.final,
            )


async def start(host: str = "127.0.0.1", port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    streaming_pb2_grpc.add_StreamingParserServicer_to_server(EchoServicer(), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound


async def _serve(host: str, port: int) -> None:
    server, bound = await start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"echo listening on {host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default="auto")
    args = parser.parse_args(argv)
    run(lambda: _serve(args.host, args.port), args.event_loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
