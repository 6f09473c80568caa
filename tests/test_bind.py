"""One server per port: a server listens on every address its host names, or does not start.

gRPC alone starts a server if any one address of a name binds, so `--host localhost` could
start on [::1] beside another server on 127.0.0.1:same port, and clients of localhost would
reach one or the other.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import REPO, TIMEOUT

from server.app import BindError, create_server, listen_address
from server.config import Config


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6_LOOPBACK = _has_ipv6_loopback()
needs_ipv6_loopback = pytest.mark.skipif(
    not HAS_IPV6_LOOPBACK, reason="this machine has no ::1, so localhost names one address"
)


def _can_bind(family: int, host: str, port: int) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError:
        return False
    return True


def _free_loopback_port() -> int:
    """A port now free on 127.0.0.1 and, where there is one, on ::1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not HAS_IPV6_LOOPBACK or _can_bind(socket.AF_INET6, "::1", port):
            return port


async def _list_processors(address: str) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        response = await stub.ListProcessors(pb.ListProcessorsRequest(), timeout=TIMEOUT)
    return [p.name for p in response.processors]


async def _second_server_on_the_port_of(first_host: str, second_host: str) -> str:
    """The BindError message of a server on `second_host` at the port of one on `first_host`."""
    first, port = await create_server(Config(host=first_host, port=0))
    await first.start()
    try:
        with pytest.raises(BindError) as error:
            await create_server(Config(host=second_host, port=port))
        # Nothing was left bound: the address that was free still is.
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            if host != first_host:
                assert _can_bind(family, host, port), f"{host}:{port} was left bound"
        assert "text" in await _list_processors(listen_address(first_host, port))
        return str(error.value).replace(str(port), "PORT")
    finally:
        await first.stop(0)


@needs_ipv6_loopback
def test_localhost_does_not_start_beside_a_server_on_127_0_0_1():
    message = asyncio.run(_second_server_on_the_port_of("127.0.0.1", "localhost"))
    assert message == "cannot listen on localhost:PORT: 127.0.0.1:PORT is in use"


@needs_ipv6_loopback
def test_localhost_does_not_start_beside_a_server_on_ipv6_loopback():
    message = asyncio.run(_second_server_on_the_port_of("::1", "localhost"))
    assert message == "cannot listen on localhost:PORT: [::1]:PORT is in use"


def test_the_same_address_twice_is_refused_with_its_reason():
    message = asyncio.run(_second_server_on_the_port_of("127.0.0.1", "127.0.0.1"))
    assert message == "cannot listen on 127.0.0.1:PORT: the address is in use"


def test_an_address_not_of_this_machine_is_refused():
    async def start() -> None:
        # TEST-NET-2 (RFC 5737): never assigned to a real interface.
        await create_server(Config(host="198.51.100.7", port=0))

    with pytest.raises(BindError) as error:
        asyncio.run(start())
    assert str(error.value) == (
        "cannot listen on 198.51.100.7:0: the address is not assigned to this machine"
    )


def test_the_command_exits_1_naming_the_address_in_use(server_factory):
    taken = server_factory().port  # in process, on 127.0.0.1
    result = subprocess.run(
        [sys.executable, "-m", "server", "--host", "localhost", "--port", str(taken)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"chunkwise: cannot listen on localhost:{taken}: 127.0.0.1:{taken} is in use\n"
    )


@pytest.mark.parametrize("port", ["free", 0])
def test_localhost_serves_on_every_loopback_on_one_port(port):
    async def serve() -> None:
        asked = _free_loopback_port() if port == "free" else port
        server, bound = await create_server(Config(host="localhost", port=asked))
        await server.start()
        try:
            if asked:
                assert bound == asked
            addresses = [f"127.0.0.1:{bound}"]
            if HAS_IPV6_LOOPBACK:
                addresses.append(f"[::1]:{bound}")
            for address in [*addresses, f"localhost:{bound}"]:
                assert "text" in await _list_processors(address), address
        finally:
            await server.stop(0)

    asyncio.run(serve())
