"""Real chunkwise servers for tests: in-process on a free loopback port, or as `python -m server`.

The in-process server runs its grpc.aio event loop on a thread of its own, so tests drive it
with the ordinary blocking client, as a backend service would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc

from server.app import Server, create_server
from server.config import Config
from server.streams import Streams

_T = TypeVar("_T")

REPO = Path(__file__).resolve().parent.parent
#: Generous: a 2-core machine running other suites can be slow, and a deadline only
#: matters when something hangs.
TIMEOUT = 60.0
#: Final responses and GetCompleteText can exceed gRPC's default 4 MiB receive limit.
CLIENT_OPTIONS = [("grpc.max_receive_message_length", 64 << 20)]


class InProcessServer:
    """A started chunkwise server on 127.0.0.1 with its event loop on a background thread."""

    def __init__(self, config: Config, streams: Streams | None = None) -> None:
        self.config = replace(config, host="127.0.0.1", port=0)
        self.streams = streams if streams is not None else Streams(self.config.limits())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server: Server
        self.server, self.port = self.run(create_server(self.config, self.streams))
        self.run(self.server.start())
        self.address = f"127.0.0.1:{self.port}"

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine on the server's loop and wait for its result."""
        return self.submit(coroutine).result(TIMEOUT)

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Start a coroutine on the server's loop without waiting for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address, options=CLIENT_OPTIONS)

    def secure_channel(self, credentials: grpc.ChannelCredentials) -> grpc.Channel:
        """A TLS channel to this server, for one started with `tls_cert` and `tls_key`."""
        return grpc.secure_channel(self.address, credentials, options=CLIENT_OPTIONS)

    def close(self) -> None:
        try:
            self.run(self.server.stop(0))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(TIMEOUT)
            self._loop.close()


class Conversation:
    """One ProcessChunks stream driven a request at a time: `send()` waits for its response."""

    def __init__(self, stub: pb_grpc.StreamingParserStub) -> None:
        self._requests: queue.Queue[pb.ProcessChunksRequest | None] = queue.Queue()
        self._responses = stub.ProcessChunks(iter(self._requests.get, None), timeout=TIMEOUT)

    def send(self, chunk_id: str = "", chunk: str = "", **fields: Any) -> pb.ProcessChunksResponse:
        self._requests.put(pb.ProcessChunksRequest(chunk_id=chunk_id, chunk=chunk, **fields))
        return next(self._responses)

    def send_raw(self, request: pb.ProcessChunksRequest) -> pb.ProcessChunksResponse:
        self._requests.put(request)
        return next(self._responses)

    def close(self) -> None:
        """Half-close the stream and check that the server ends it cleanly."""
        self._requests.put(None)
        assert list(self._responses) == []
        assert self._responses.code() == grpc.StatusCode.OK

    def cancel(self) -> None:
        self._requests.put(None)
        self._responses.cancel()

    @property
    def responses(self) -> grpc.Call:
        return self._responses


@pytest.fixture
def server_factory() -> Iterator[Callable[..., InProcessServer]]:
    """Start servers with settings of the test's choosing: ``server_factory(max_ids=2)``."""
    started: list[InProcessServer] = []

    def start(**settings: Any) -> InProcessServer:
        started.append(InProcessServer(Config(**settings)))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture
def grpc_server(server_factory: Callable[..., InProcessServer]) -> InProcessServer:
    """A server with the default limits and a fresh Streams."""
    return server_factory()


@pytest.fixture
def channel(grpc_server: InProcessServer) -> Iterator[grpc.Channel]:
    with grpc_server.channel() as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.StreamingParserStub:
    return pb_grpc.StreamingParserStub(channel)


@pytest.fixture
def conversation(stub: pb_grpc.StreamingParserStub) -> Iterator[Conversation]:
    talk = Conversation(stub)
    yield talk
    talk.cancel()


class ServerProcess:
    """`python -m server` as a child process; the port is read from its first stdout line.

    Both pipes are read from the start by threads of their own: a server that logs a line per
    stream would otherwise fill a pipe nobody reads and block on its next write.
    """

    LISTENING = re.compile(r"^chunkwise listening on 127\.0\.0\.1:(\d+)$")

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0", *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._stdout_lines: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        line = self._first_line()
        match = self.LISTENING.match(line.rstrip("\n"))
        if match is None:
            self.process.kill()
            _, stderr = self.wait()[1:]
            raise AssertionError(f"unexpected first line {line!r}; stderr: {stderr}")
        self.port = int(match.group(1))
        self.address = f"127.0.0.1:{self.port}"

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._stdout_lines.put(line)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def _first_line(self) -> str:
        try:
            return self._stdout_lines.get(timeout=TIMEOUT)
        except queue.Empty:
            self.process.kill()
            raise AssertionError("the server printed nothing") from None

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self) -> tuple[int, str, str]:
        """Exit status, the rest of stdout, and stderr."""
        self.process.wait(timeout=TIMEOUT)
        for reader in self._readers:
            reader.join(timeout=TIMEOUT)
        rest: list[str] = []
        while not self._stdout_lines.empty():
            rest.append(self._stdout_lines.get_nowait())
        return self.process.returncode, "".join(rest), "".join(self._stderr)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.wait()


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        started.append(ServerProcess(*args))
        return started[-1]

    yield start
    for process in started:
        process.close()
