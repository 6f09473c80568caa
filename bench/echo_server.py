"""The ceiling for the service bench: a bare grpc.aio server on the chunkwise.v1 service
that answers each ProcessChunksRequest with a ProcessChunksResponse of the same size (the
chunk comes back as the delta) and does nothing else. Whatever the service does beyond
this is its own cost.

    python -m bench.echo_server --host 127.0.0.1 --port 0
prints `echo listening on HOST:PORT` once it serves, and stops on SIGTERM or SIGINT. It runs
on the same kind of event loop as the service (`--event-loop`, as `python -m server`).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import grpc
from chunkwise.v1 import streaming_pb2, streaming_pb2_grpc

from . import bare_server


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


def main(argv: list[str] | None = None) -> int:
    return bare_server.main("bench.echo_server", "echo", start, argv)


if __name__ == "__main__":
    sys.exit(main())
