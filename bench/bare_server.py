"""A bench server as a child process: it prints `NAME listening on HOST:PORT` once it
serves (what service_bench.ServerProcess waits for), and stops on SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Awaitable, Callable

import grpc

from server.event_loop import EVENT_LOOPS, run

Start = Callable[[str, int], Awaitable[tuple[grpc.aio.Server, int]]]


async def _serve(name: str, start: Start, host: str, port: int) -> None:
    server, bound = await start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"{name} listening on {host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1)


def main(module: str, name: str, start: Start, argv: list[str] | None = None) -> int:
    """`python -m <module>`: `start` on --host and --port, on the --event-loop asked."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default="auto")
    args = parser.parse_args(argv)
    run(lambda: _serve(name, start, args.host, args.port), args.event_loop)
    return 0
