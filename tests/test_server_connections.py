"""Connection settings load balancers need: --max-connection-age makes the server ask a
client to reconnect (its channel goes back to IDLE, then connects again for the next call),
and without it a connection stays up; keepalive settings reach gRPC in milliseconds."""

from __future__ import annotations

import threading
import time

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import TIMEOUT

from server.app import _connection_options
from server.config import Config


def _states_over(server, seconds: float) -> list[grpc.ChannelConnectivity]:
    """The connectivity states a channel goes through: one call, `seconds` idle, one call."""
    states: list[grpc.ChannelConnectivity] = []
    lock = threading.Lock()

    def seen(state: grpc.ChannelConnectivity) -> None:
        with lock:
            states.append(state)

    with server.channel() as channel:
        channel.subscribe(seen, try_to_connect=True)
        stub = pb_grpc.StreamingParserStub(channel)
        stub.ListProcessors(pb.ListProcessorsRequest(), timeout=TIMEOUT)
        time.sleep(seconds)
        stub.ListProcessors(pb.ListProcessorsRequest(), timeout=TIMEOUT)
        channel.unsubscribe(seen)
    with lock:
        return list(states)


def test_a_connection_past_its_age_is_asked_to_reconnect(server_factory) -> None:
    server = server_factory(max_connection_age=0.5, max_connection_age_grace=0.5)
    states = _states_over(server, 2.5)
    # Back to IDLE once connected: the server closed the connection (the second call then
    # made a new one).
    assert grpc.ChannelConnectivity.IDLE in _after_ready(states), states


def test_without_an_age_a_connection_stays_up(server_factory) -> None:
    states = _states_over(server_factory(), 2.5)
    assert grpc.ChannelConnectivity.IDLE not in _after_ready(states), states


def _after_ready(states: list[grpc.ChannelConnectivity]) -> list[grpc.ChannelConnectivity]:
    return states[states.index(grpc.ChannelConnectivity.READY) + 1 :]


def test_keepalive_and_age_reach_grpc_in_milliseconds() -> None:
    options = dict(
        _connection_options(
            Config(keepalive_time=30, keepalive_timeout=5.5, max_connection_age=600)
        )
    )
    assert options["grpc.keepalive_time_ms"] == 30_000
    assert options["grpc.keepalive_timeout_ms"] == 5_500
    assert options["grpc.max_connection_age_ms"] == 600_000
    assert options["grpc.max_connection_age_grace_ms"] == 30_000
    assert "grpc.max_connection_age_ms" not in dict(_connection_options(Config()))
