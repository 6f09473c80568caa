"""Health checking and server reflection on the in-process server."""

import time

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_server import TIMEOUT, Conversation, InProcessServer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("service", ["", "chunkwise.v1.StreamingParser"])
def test_health_is_serving(channel: grpc.Channel, service: str) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
    assert response.status == SERVING


def test_health_of_an_unknown_service_is_not_found(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as error:
        health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=TIMEOUT)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_open_watch_sees_not_serving_and_ends_without_holding_the_drain(
    grpc_server: InProcessServer, channel: grpc.Channel
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    watches = [
        health.Watch(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        for service in ("", "chunkwise.v1.StreamingParser")
    ]
    for watch in watches:
        assert next(watch).status == SERVING
    grace = 30.0
    started = time.monotonic()
    stopping = grpc_server.submit(grpc_server.server.stop(grace))
    for watch in watches:
        assert [response.status for response in watch] == [NOT_SERVING]
        assert watch.code() == grpc.StatusCode.OK
    stopping.result(TIMEOUT)
    assert time.monotonic() - started < grace / 2


def test_reflection_lists_every_service(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    assert set(database.get_services()) == {
        "chunkwise.v1.StreamingParser",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


def test_reflection_describes_the_service_and_its_messages(channel: grpc.Channel) -> None:
    pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName("chunkwise.v1.StreamingParser")
    assert {method.name for method in service.methods} == {
        "ProcessChunks",
        "GetCompleteText",
        "ClearChunk",
        "ListProcessors",
    }
    process = service.methods_by_name["ProcessChunks"]
    assert process.client_streaming and process.server_streaming
    request = pool.FindMessageTypeByName("chunkwise.v1.ProcessChunksRequest")
    assert {field.name: field.number for field in request.fields} == {
        "chunk_id": 1,
        "chunk": 2,
        "processor_type": 3,
        "mode": 4,
        "final": 5,
        "sequence": 6,
    }


def test_a_drain_refuses_new_calls_and_stops_once_open_streams_end(
    grpc_server: InProcessServer, channel: grpc.Channel
) -> None:
    stub = pb_grpc.StreamingParserStub(channel)
    conversation = Conversation(stub)
    assert conversation.send("open", "a", mode=pb.DELTA_MODE_APPEND).delta == "a"
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT
    )
    assert next(watch).status == SERVING
    grace = 30.0
    stopping = grpc_server.submit(grpc_server.server.stop(grace))
    assert [response.status for response in watch] == [NOT_SERVING]
    # A new call, even on a connection that is already open, is refused by chunkwise
    # itself with UNAVAILABLE, the status clients retry elsewhere.
    for call, request in [
        (stub.ListProcessors, pb.ListProcessorsRequest()),
        (stub.GetCompleteText, pb.GetCompleteTextRequest(chunk_id="open")),
    ]:
        with pytest.raises(grpc.RpcError) as error:
            call(request, timeout=TIMEOUT)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in error.value.details()
    refused_stream = Conversation(stub)
    with pytest.raises(grpc.RpcError) as error:
        refused_stream.send("new", "x")
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    # The open stream runs on, and the stop waits for it.
    assert conversation.send("open", "b").delta == "b"
    assert not stopping.done()
    assert conversation.send("open", "c", final=True).complete_text == "abc"
    conversation.close()
    closed = time.monotonic()
    stopping.result(TIMEOUT)
    assert time.monotonic() - closed < grace / 3
