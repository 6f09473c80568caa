"""`python -m server` as a process: grpcurl against it, and the graceful stop on signals."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_server import CLIENT_OPTIONS, REPO, TIMEOUT, Conversation

GRPCURL = Path(sys.executable).parent / "grpcurl"


def grpcurl(address: str, *command: str, flags: tuple[str, ...] = (), stdin: str = "") -> str:
    result = subprocess.run(
        [str(GRPCURL), "-plaintext", *flags, address, *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def json_messages(text: str) -> list[dict]:
    """grpcurl prints one pretty-printed JSON object per message, back to back."""
    decoder = json.JSONDecoder()
    messages, position = [], 0
    text = text.strip()
    while position < len(text):
        message, position = decoder.raw_decode(text, position)
        messages.append(message)
        while position < len(text) and text[position].isspace():
            position += 1
    return messages


@pytest.fixture
def process_address(server_process) -> str:
    return server_process().address


class TestGrpcurl:
    def test_list_through_reflection(self, process_address: str) -> None:
        assert grpcurl(process_address, "list").split() == [
            "chunkwise.v1.StreamingParser",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        ]

    def test_describe_the_service(self, process_address: str) -> None:
        output = grpcurl(process_address, "describe", "chunkwise.v1.StreamingParser")
        assert "chunkwise.v1.StreamingParser is a service:" in output
        assert (
            "rpc ProcessChunks ( stream .chunkwise.v1.ProcessChunksRequest ) "
            "returns ( stream .chunkwise.v1.ProcessChunksResponse );"
        ) in output
        for method in ("GetCompleteText", "ClearChunk", "ListProcessors"):
            assert f"rpc {method} (" in output

    def test_process_chunks_with_several_messages_on_stdin(self, process_address: str) -> None:
        requests = "\n".join(
            [
                '{"chunk_id": "call-1", "processor_type": "json", "mode": "DELTA_MODE_APPEND",'
                ' "chunk": "{\\"q\\": \\"wea"}',
                '{"chunk_id": "call-1", "chunk": "ther\\"}", "final": true}',
                '{"chunk_id": "", "chunk": "x"}',
            ]
        )
        output = grpcurl(
            process_address,
            "chunkwise.v1.StreamingParser/ProcessChunks",
            flags=("-d", "@"),
            stdin=requests,
        )
        first, second, third = json_messages(output)
        # grpcurl prints proto field names and leaves out fields at their defaults.
        assert (first["chunk_id"], first["delta"]) == ("call-1", '{"q": "wea')
        assert first["output"]["json"]["deltas"][0] == {"set_json": "{}"}
        assert (second["delta"], second["final"], second["complete_text"]) == (
            'ther"}',
            True,
            '{"q": "weather"}',
        )
        assert json.loads(second["output"]["json"]["value_json"]) == {"q": "weather"}
        assert third["error"]["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]

    def test_health_check(self, process_address: str) -> None:
        output = grpcurl(process_address, "grpc.health.v1.Health/Check")
        assert json_messages(output) == [{"status": "SERVING"}]


def watch_health(channel: grpc.Channel):
    health = health_pb2_grpc.HealthStub(channel)
    return health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)


def wait_until_refused(address: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.StreamingParserStub(channel)
            try:
                stub.ListProcessors(pb.ListProcessorsRequest(), timeout=5)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE
                return
        time.sleep(0.05)
    pytest.fail("new calls were still served")


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_drains_open_streams_then_exits_0(
    server_process, signum: int, event_loop: str
) -> None:
    server = server_process("--grace-period", "30", "--event-loop", event_loop)
    with grpc.insecure_channel(server.address, options=CLIENT_OPTIONS) as channel:
        conversation = Conversation(pb_grpc.StreamingParserStub(channel))
        assert conversation.send("open", "before ", mode=pb.DELTA_MODE_APPEND).delta == "before "
        watch = watch_health(channel)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        signalled = time.monotonic()
        server.process.send_signal(signum)
        assert [r.status for r in watch] == [health_pb2.HealthCheckResponse.NOT_SERVING]
        wait_until_refused(server.address)
        # The open stream runs on: its remaining responses all arrive.
        assert conversation.send("open", "during").delta == "during"
        final = conversation.send("open", "!", final=True)
        assert final.complete_text == "before during!"
        conversation.close()
    status, stdout, stderr = server.wait()
    assert status == 0, stderr
    assert stdout == ""
    assert time.monotonic() - signalled < 20, "it waited for the grace period"


def test_a_stream_still_open_after_the_grace_period_is_cancelled(server_process) -> None:
    server = server_process("--grace-period", "1")
    with grpc.insecure_channel(server.address) as channel:
        conversation = Conversation(pb_grpc.StreamingParserStub(channel))
        conversation.send("open", "text")
        server.terminate()
        status, _, stderr = server.wait()
        assert status == 0, stderr
        with pytest.raises(grpc.RpcError) as error:
            conversation.send("open", "late")
        assert error.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)


def test_a_port_in_use_is_an_error(server_process) -> None:
    server = server_process()
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", str(server.port)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("flags", "event_loop"),
    [((), "uvloop"), (("--event-loop", "asyncio"), "asyncio")],
    ids=["default-loop", "asyncio-loop"],
)
def test_log_lines_are_key_value_on_stderr(
    server_process, flags: tuple[str, ...], event_loop: str
) -> None:
    server = server_process("--log-level", "info", "--log-format", "logfmt", *flags)
    server.terminate()
    status, _, stderr = server.wait()
    assert status == 0
    events = [
        dict(part.split("=", 1) for part in shlex.split(line)) for line in stderr.splitlines()
    ]
    assert [e.get("event") for e in events] == ["listening", "stopped"]
    assert events[0]["port"] == str(server.port)
    assert events[0]["event_loop"] == event_loop
    assert all(e["level"] == "info" for e in events)


def test_clients_that_give_up_on_streams_leave_the_server_running(server_process) -> None:
    server = server_process()
    # The default 4 MiB receive limit: the final response below is too big for this client.
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        requests = [
            pb.ProcessChunksRequest(
                chunk_id="big", chunk="x" * 1_000_000, mode=pb.DELTA_MODE_APPEND
            )
            for _ in range(5)
        ]
        requests.append(pb.ProcessChunksRequest(chunk_id="big", final=True))
        responses = stub.ProcessChunks(iter(requests), timeout=TIMEOUT)
        with pytest.raises(grpc.RpcError) as error:
            for _ in responses:
                pass
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        cancelled = Conversation(stub)
        cancelled.send("left", "half")
        cancelled.cancel()
        listed = stub.ListProcessors(pb.ListProcessorsRequest(), timeout=TIMEOUT)
        assert "text" in [p.name for p in listed.processors]
    assert server.process.poll() is None
    server.terminate()
    status, _, stderr = server.wait()
    assert status == 0, stderr
