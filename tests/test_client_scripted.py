"""The blocking client against a scripted server: grpc_testing's channel and fake clock.

The test plays the server: it takes each call the client makes, reads its requests and
answers or fails it. The client runs on a worker thread; waits between retries go through
the fake clock, so the clock shows exactly how long the client backed off.
"""

from __future__ import annotations

import concurrent.futures
import queue
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import grpc_testing
import pytest
from chunkwise.v1 import streaming_pb2 as pb
from grpc_health.v1 import health_pb2

import client
from client import Client, Retry

SERVICE = pb.DESCRIPTOR.services_by_name["StreamingParser"]
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
PROCESS_CHUNKS = SERVICE.methods_by_name["ProcessChunks"]
GET_COMPLETE_TEXT = SERVICE.methods_by_name["GetCompleteText"]
CLEAR_CHUNK = SERVICE.methods_by_name["ClearChunk"]
LIST_PROCESSORS = SERVICE.methods_by_name["ListProcessors"]
HEALTH_CHECK = HEALTH.methods_by_name["Check"]
T0 = 1000.0
WAIT = 30.0
OK = grpc.StatusCode.OK
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
# With the random fraction pinned at 0.5 and jitter 0.2 every wait is 90% of its base:
# 0.1 s, then 0.2 s, 0.4 s, ... as Retry's defaults say.
FIRST_WAIT, SECOND_WAIT, THIRD_WAIT = 0.09, 0.18, 0.36


@pytest.fixture
def fake_time() -> Any:
    return grpc_testing.strict_fake_time(T0)


@pytest.fixture
def fake_channel(fake_time: Any) -> grpc_testing.Channel:
    return grpc_testing.channel([SERVICE, HEALTH], fake_time)


@pytest.fixture
def make_client(fake_channel: grpc_testing.Channel, fake_time: Any) -> Callable[..., Client]:
    def make(**options: Any) -> Client:
        return Client(
            channel=fake_channel,
            sleep=fake_time.sleep_for,
            random_fraction=lambda: 0.5,
            **options,
        )

    return make


@pytest.fixture
def in_background() -> Iterator[Callable[..., concurrent.futures.Future]]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        yield pool.submit


def answer(request: pb.ProcessChunksRequest, **fields: Any) -> pb.ProcessChunksResponse:
    fields.setdefault("delta", request.chunk)
    return pb.ProcessChunksResponse(
        chunk_id=request.chunk_id, sequence=request.sequence, final=request.final, **fields
    )


def fail_unary(fake_channel: grpc_testing.Channel, method: Any, code: grpc.StatusCode) -> None:
    _, _, rpc = fake_channel.take_unary_unary(method)
    rpc.terminate(None, (), code, f"scripted {code.name}")


# --- unary calls ---------------------------------------------------------------------------


def test_get_complete_text_sends_the_id_and_returns_a_plain_value(
    fake_channel, make_client, in_background
):
    result = in_background(make_client(token="s3cret").get_complete_text, "call-7")
    metadata, request, rpc = fake_channel.take_unary_unary(GET_COMPLETE_TEXT)
    rpc.terminate(
        pb.GetCompleteTextResponse(text="abc", last_sequence=4, processor_type="plan"),
        (),
        OK,
        "",
    )
    assert request.chunk_id == "call-7"
    assert ("authorization", "Bearer s3cret") in metadata
    assert result.result(WAIT) == client.TextInfo(
        text="abc", last_sequence=4, processor_type="plan"
    )


def test_clear_list_and_health(fake_channel, make_client, in_background):
    chunkwise = make_client()
    cleared = in_background(chunkwise.clear_chunk, "x")
    _, request, rpc = fake_channel.take_unary_unary(CLEAR_CHUNK)
    rpc.terminate(pb.ClearChunkResponse(cleared=True), (), OK, "")
    assert request.chunk_id == "x"
    assert cleared.result(WAIT) is True

    listed = in_background(chunkwise.list_processors)
    _, _, rpc = fake_channel.take_unary_unary(LIST_PROCESSORS)
    rpc.terminate(
        pb.ListProcessorsResponse(
            processors=[pb.ProcessorInfo(name="json", description="JSON as it grows")]
        ),
        (),
        OK,
        "",
    )
    assert listed.result(WAIT) == [client.ProcessorInfo("json", "JSON as it grows")]

    health = in_background(chunkwise.health, "chunkwise.v1.StreamingParser")
    _, request, rpc = fake_channel.take_unary_unary(HEALTH_CHECK)
    rpc.terminate(
        health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING),
        (),
        OK,
        "",
    )
    assert request.service == "chunkwise.v1.StreamingParser"
    assert health.result(WAIT) == "NOT_SERVING"


def test_a_unary_call_is_retried_on_unavailable_with_growing_waits(
    fake_channel, fake_time, make_client, in_background
):
    result = in_background(make_client().clear_chunk, "x")
    fail_unary(fake_channel, CLEAR_CHUNK, UNAVAILABLE)
    fail_unary(fake_channel, CLEAR_CHUNK, UNAVAILABLE)
    _, _, rpc = fake_channel.take_unary_unary(CLEAR_CHUNK)
    rpc.terminate(pb.ClearChunkResponse(cleared=False), (), OK, "")
    assert result.result(WAIT) is False
    assert fake_time.time() - T0 == pytest.approx(FIRST_WAIT + SECOND_WAIT)


def test_a_unary_call_gives_up_after_its_retries(
    fake_channel, fake_time, make_client, in_background
):
    result = in_background(make_client(retries=2).get_complete_text, "x")
    for _ in range(3):
        fail_unary(fake_channel, GET_COMPLETE_TEXT, UNAVAILABLE)
    with pytest.raises(client.Unavailable) as raised:
        result.result(WAIT)
    assert raised.value.code == UNAVAILABLE
    assert raised.value.message == "scripted UNAVAILABLE"
    assert isinstance(raised.value.__cause__, grpc.RpcError)
    assert fake_time.time() - T0 == pytest.approx(FIRST_WAIT + SECOND_WAIT)


def test_backoff_is_capped_by_max_backoff(fake_channel, fake_time, make_client, in_background):
    retry = Retry(retries=3, initial_backoff=1.0, multiplier=10.0, max_backoff=4.0, jitter=0.0)
    result = in_background(make_client(retries=retry).clear_chunk, "x")
    for _ in range(3):
        fail_unary(fake_channel, CLEAR_CHUNK, UNAVAILABLE)
    _, _, rpc = fake_channel.take_unary_unary(CLEAR_CHUNK)
    rpc.terminate(pb.ClearChunkResponse(cleared=True), (), OK, "")
    assert result.result(WAIT) is True
    assert fake_time.time() - T0 == pytest.approx(1.0 + 4.0 + 4.0)


EXPECTED_CLASSES = {
    grpc.StatusCode.CANCELLED: client.Cancelled,
    grpc.StatusCode.UNKNOWN: client.Unknown,
    grpc.StatusCode.INVALID_ARGUMENT: client.InvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: client.DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: client.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: client.AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: client.PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: client.ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: client.FailedPrecondition,
    grpc.StatusCode.ABORTED: client.Aborted,
    grpc.StatusCode.OUT_OF_RANGE: client.OutOfRange,
    grpc.StatusCode.UNIMPLEMENTED: client.Unimplemented,
    grpc.StatusCode.INTERNAL: client.Internal,
    grpc.StatusCode.UNAVAILABLE: client.Unavailable,
    grpc.StatusCode.DATA_LOSS: client.DataLoss,
    grpc.StatusCode.UNAUTHENTICATED: client.Unauthenticated,
}


def test_every_failure_status_has_its_own_class():
    assert set(EXPECTED_CLASSES) == set(grpc.StatusCode) - {OK}


@pytest.mark.parametrize("status", list(EXPECTED_CLASSES), ids=lambda status: status.name)
def test_unary_errors_are_mapped_by_status(
    status, fake_channel, fake_time, make_client, in_background
):
    result = in_background(make_client(retries=0).get_complete_text, "x")
    fail_unary(fake_channel, GET_COMPLETE_TEXT, status)
    with pytest.raises(client.ChunkwiseError) as raised:
        result.result(WAIT)
    assert type(raised.value) is EXPECTED_CLASSES[status]
    assert raised.value.code == status
    assert raised.value.grpc_status_code == status
    assert raised.value.message == f"scripted {status.name}"
    assert isinstance(raised.value.__cause__, grpc.RpcError)
    assert fake_time.time() == T0


@pytest.mark.parametrize("status", list(EXPECTED_CLASSES), ids=lambda status: status.name)
def test_stream_errors_are_mapped_by_status_while_iterating(
    status, fake_channel, make_client, in_background
):
    def converse() -> None:
        with make_client(retries=0).stream() as stream:
            stream.send("a", "x")
            list(stream)

    result = in_background(converse)
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    rpc.take_request()
    rpc.terminate((), status, f"scripted {status.name}")
    with pytest.raises(client.ChunkwiseError) as raised:
        result.result(WAIT)
    assert type(raised.value) is EXPECTED_CLASSES[status]
    assert raised.value.message == f"scripted {status.name}"
    assert isinstance(raised.value.__cause__, grpc.RpcError)


# --- streams -------------------------------------------------------------------------------


class Conversation:
    """The client side of a scripted stream: sends on a worker, updates land in a queue."""

    def __init__(self, chunkwise: Client, in_background, sends: list[tuple[str, str, dict]]):
        self.updates: queue.Queue[client.ChunkUpdate] = queue.Queue()
        self.result = in_background(self._run, chunkwise, sends)

    def _run(self, chunkwise: Client, sends: list[tuple[str, str, dict]]) -> list[int]:
        with chunkwise.stream() as stream:
            numbers = [
                stream.send(chunk_id, chunk, **options) for chunk_id, chunk, options in sends
            ]
            for update in stream:
                self.updates.put(update)
        return numbers

    def next_update(self) -> client.ChunkUpdate:
        return self.updates.get(timeout=WAIT)


def test_requests_are_numbered_per_id_and_answers_become_updates(
    fake_channel, make_client, in_background
):
    sends = [
        ("a", '{"plan_markdown": "', {"processor_type": "plan", "mode": "append"}),
        ("b", "[1", {"processor_type": "json", "mode": "snapshot"}),
        ("a", "Hi", {}),
        ("b", "[1, 2]", {"final": True}),
    ]
    talk = Conversation(make_client(), in_background, sends)
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    requests = [rpc.take_request() for _ in sends]
    assert [(r.chunk_id, r.sequence) for r in requests] == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert requests[0].processor_type == "plan"
    assert requests[0].mode == pb.DELTA_MODE_APPEND
    assert requests[1].mode == pb.DELTA_MODE_SNAPSHOT
    assert requests[2].processor_type == "" and requests[2].mode == pb.DELTA_MODE_UNSPECIFIED
    assert [r.final for r in requests] == [False, False, False, True]

    rpc.send_response(answer(requests[0], delta='{"plan_markdown": "'))
    rpc.send_response(
        answer(
            requests[1],
            output=pb.ProcessedOutput(
                json=pb.PartialJson(
                    deltas=[
                        pb.JsonDelta(path="", set_json="[]"),
                        pb.JsonDelta(path="/0", set_json="1"),
                    ]
                )
            ),
        )
    )
    text = pb.ReasoningText(
        id="a", title="Creating a plan...", message_chunk="Hi", status="loading"
    )
    rpc.send_response(answer(requests[2], output=pb.ProcessedOutput(text=text)))
    rpc.send_response(
        answer(
            requests[3],
            delta=", 2]",
            complete_text="[1, 2]",
            output=pb.ProcessedOutput(json=pb.PartialJson(value_json="[1,2]")),
        )
    )
    updates = [talk.next_update() for _ in sends]
    rpc.requests_closed()
    rpc.terminate((), OK, "")
    assert talk.result.result(WAIT) == [1, 1, 2, 2]

    assert updates[0] == client.ChunkUpdate(chunk_id="a", sequence=1, delta='{"plan_markdown": "')
    assert updates[1].output == client.PartialJson(
        deltas=(client.JsonDelta("", set_json="[]"), client.JsonDelta("/0", set_json="1"))
    )
    assert updates[2].output == client.ReasoningText(
        id="a",
        title="Creating a plan...",
        secondary_title="",
        message_chunk="Hi",
        message="",
        status="loading",
    )
    assert updates[3].final and updates[3].complete_text == "[1, 2]"
    assert updates[3].output == client.PartialJson(deltas=(), value_json="[1,2]")


def test_file_outputs_and_json_appends_are_converted(fake_channel, make_client, in_background):
    talk = Conversation(make_client(), in_background, [("m", "x", {}), ("j", "y", {})])
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    first, second = rpc.take_request(), rpc.take_request()
    file = pb.FileDelta(
        id="0f",
        file_type="metric",
        file_name="m.yml",
        version_number=1,
        status="loading",
        text_chunk="name: m",
    )
    rpc.send_response(
        answer(
            first,
            output=pb.ProcessedOutput(
                file=pb.ReasoningFile(
                    id="m", title="Creating metric files...", status="loading", files=[file]
                )
            ),
        )
    )
    rpc.send_response(
        answer(
            second,
            output=pb.ProcessedOutput(
                json=pb.PartialJson(deltas=[pb.JsonDelta(path="/k", append="é")])
            ),
        )
    )
    updates = [talk.next_update(), talk.next_update()]
    rpc.requests_closed()
    rpc.terminate((), OK, "")
    talk.result.result(WAIT)
    assert updates[0].output == client.ReasoningFile(
        id="m",
        title="Creating metric files...",
        secondary_title="",
        status="loading",
        files=(
            client.FileDelta(
                id="0f",
                file_type="metric",
                file_name="m.yml",
                version_number=1,
                status="loading",
                text_chunk="name: m",
                text="",
            ),
        ),
    )
    assert updates[1].output == client.PartialJson(deltas=(client.JsonDelta("/k", append="é"),))


def test_a_dropped_stream_is_resumed_with_the_unanswered_requests_renumbered_alike(
    fake_channel, fake_time, make_client, in_background
):
    sends = [("a", "one ", {"mode": "append"}), ("a", "two ", {}), ("a", "three", {"final": True})]
    talk = Conversation(make_client(), in_background, sends)
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    first, second, third = (rpc.take_request() for _ in sends)
    rpc.send_response(answer(first))
    assert talk.next_update().delta == "one "
    rpc.terminate((), UNAVAILABLE, "connection reset")

    _, resumed = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    resent = [resumed.take_request(), resumed.take_request()]
    assert resent == [second, third]
    assert [r.sequence for r in resent] == [2, 3]
    # The server had applied "two " before the drop: it says so, with the same delta.
    resumed.send_response(answer(resent[0], duplicate=True))
    resumed.send_response(answer(resent[1], complete_text="one two three"))
    updates = [talk.next_update(), talk.next_update()]
    resumed.requests_closed()
    resumed.terminate((), OK, "")
    talk.result.result(WAIT)

    assert updates[0].duplicate and updates[0].error is None and updates[0].delta == "two "
    assert updates[1].complete_text == "one two three"
    assert fake_time.time() - T0 == pytest.approx(FIRST_WAIT)


def test_a_refusal_lost_to_a_write_race_is_resumed_like_unavailable(
    fake_channel, fake_time, make_client, in_background
):
    # What grpc.aio reports when a write races a draining server's refusal.
    talk = Conversation(make_client(), in_background, [("a", "x", {})])
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    rpc.take_request()
    rpc.terminate((), grpc.StatusCode.INTERNAL, "Internal error from Core")
    # Had the client given up, it would be done by now, and the take below would wait forever.
    concurrent.futures.wait([talk.result], timeout=1)
    assert not talk.result.done(), talk.result.exception()
    _, resumed = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    request = resumed.take_request()
    assert request.sequence == 1
    resumed.send_response(answer(request))
    update = talk.next_update()
    resumed.requests_closed()
    resumed.terminate((), OK, "")
    talk.result.result(WAIT)
    assert update.delta == "x"
    assert fake_time.time() - T0 == pytest.approx(FIRST_WAIT)


def test_any_other_internal_error_is_raised_at_once(
    fake_channel, fake_time, make_client, in_background
):
    talk = Conversation(make_client(), in_background, [("a", "x", {})])
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    rpc.take_request()
    rpc.terminate((), grpc.StatusCode.INTERNAL, "internal error; the server logged the details")
    with pytest.raises(client.Internal):
        talk.result.result(WAIT)
    assert fake_time.time() == T0


def test_a_stream_that_keeps_dropping_gives_up(fake_channel, fake_time, make_client, in_background):
    talk = Conversation(make_client(retries=2), in_background, [("a", "x", {})])
    for _ in range(3):
        _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
        assert rpc.take_request().sequence == 1
        rpc.terminate((), UNAVAILABLE, "no server")
    with pytest.raises(client.Unavailable):
        talk.result.result(WAIT)
    assert fake_time.time() - T0 == pytest.approx(FIRST_WAIT + SECOND_WAIT)


def test_the_retry_count_starts_over_once_an_answer_arrives(
    fake_channel, fake_time, make_client, in_background
):
    sends = [("a", "x", {}), ("a", "y", {}), ("a", "z", {})]
    talk = Conversation(make_client(retries=1), in_background, sends)
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    requests = [rpc.take_request() for _ in sends]
    rpc.send_response(answer(requests[0]))
    talk.next_update()
    rpc.terminate((), UNAVAILABLE, "drop")
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    assert [rpc.take_request().sequence for _ in range(2)] == [2, 3]
    rpc.send_response(answer(requests[1]))
    talk.next_update()
    rpc.terminate((), UNAVAILABLE, "drop again")
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    assert rpc.take_request().sequence == 3
    rpc.send_response(answer(requests[2]))
    talk.next_update()
    rpc.requests_closed()
    rpc.terminate((), OK, "")
    # With retries=1 the second drop would have been fatal had the count not started over.
    talk.result.result(WAIT)
    assert fake_time.time() - T0 == pytest.approx(FIRST_WAIT + FIRST_WAIT)


def test_a_duplicate_for_a_request_sent_once_is_reported_not_passed_off(
    fake_channel, make_client, in_background
):
    talk = Conversation(make_client(), in_background, [("a", "new text", {"mode": "append"})])
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    request = rpc.take_request()
    rpc.send_response(answer(request, delta="text of an earlier stream", duplicate=True))
    update = talk.next_update()
    rpc.requests_closed()
    rpc.terminate((), OK, "")
    talk.result.result(WAIT)
    assert update.duplicate
    assert update.delta == ""
    assert update.error is not None and update.error.status == "FAILED_PRECONDITION"


def test_a_per_message_error_is_on_the_update_and_the_stream_goes_on(
    fake_channel, make_client, in_background
):
    talk = Conversation(make_client(), in_background, [("", "x", {}), ("a", "y", {})])
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    bad, good = rpc.take_request(), rpc.take_request()
    refusal = pb.Error(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message="empty chunk id")
    rpc.send_response(answer(bad, delta="", error=refusal))
    rpc.send_response(answer(good))
    updates = [talk.next_update(), talk.next_update()]
    rpc.requests_closed()
    rpc.terminate((), OK, "")
    talk.result.result(WAIT)
    assert updates[0].error == client.UpdateError(code=3, message="empty chunk id")
    assert updates[0].error.status == "INVALID_ARGUMENT"
    assert updates[1].error is None and updates[1].delta == "y"


def test_raise_on_error_raises_the_per_message_error(fake_channel, make_client, in_background):
    def converse() -> None:
        with make_client().stream(raise_on_error=True) as stream:
            stream.send("a", "x", processor_type="json")
            list(stream)

    result = in_background(converse)
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    request = rpc.take_request()
    refusal = pb.Error(code=grpc.StatusCode.FAILED_PRECONDITION.value[0], message="other processor")
    rpc.send_response(answer(request, error=refusal))
    with pytest.raises(client.FailedPrecondition, match="other processor"):
        result.result(WAIT)


def test_an_answer_out_of_order_is_a_protocol_error(fake_channel, make_client, in_background):
    talk = Conversation(make_client(), in_background, [("a", "x", {}), ("b", "y", {})])
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    rpc.take_request()
    second = rpc.take_request()
    rpc.send_response(answer(second))
    with pytest.raises(client.ProtocolError, match="'a' #1 was due"):
        talk.result.result(WAIT)


def test_a_stream_ending_with_requests_unanswered_is_a_protocol_error(
    fake_channel, make_client, in_background
):
    talk = Conversation(make_client(), in_background, [("a", "x", {})])
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    rpc.take_request()
    rpc.terminate((), OK, "")
    with pytest.raises(client.ProtocolError, match="1 requests unanswered"):
        talk.result.result(WAIT)


def test_leaving_the_block_waits_for_the_answers_still_due(
    fake_channel, make_client, in_background
):
    def converse() -> int:
        with make_client().stream() as stream:
            stream.send("a", "x")
            stream.send("a", "y", final=True)
            return stream.unanswered

    result = in_background(converse)
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    requests = [rpc.take_request(), rpc.take_request()]
    rpc.requests_closed()
    assert not result.done()
    for request in requests:
        rpc.send_response(answer(request))
    rpc.terminate((), OK, "")
    assert result.result(WAIT) == 2


def test_process_marks_the_last_chunk_of_a_list_final(fake_channel, make_client, in_background):
    result = in_background(
        lambda: list(make_client().process("p", ["a", "b"], processor_type="text", mode="append"))
    )
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    requests = [rpc.take_request(), rpc.take_request()]
    assert [(r.chunk, r.sequence, r.final) for r in requests] == [("a", 1, False), ("b", 2, True)]
    for request in requests:
        rpc.send_response(answer(request))
    rpc.requests_closed()
    rpc.terminate((), OK, "")
    assert [u.delta for u in result.result(WAIT)] == ["a", "b"]


def test_process_ends_a_generator_with_a_final_chunk_that_adds_nothing(
    fake_channel, make_client, in_background
):
    def snapshots() -> Iterator[str]:
        yield "ab"
        yield "abc"

    result = in_background(lambda: list(make_client().process("s", snapshots(), mode="snapshot")))
    _, rpc = fake_channel.take_stream_stream(PROCESS_CHUNKS)
    requests = [rpc.take_request() for _ in range(3)]
    assert [(r.chunk, r.final) for r in requests] == [("ab", False), ("abc", False), ("abc", True)]
    for request in requests:
        rpc.send_response(answer(request))
    rpc.requests_closed()
    rpc.terminate((), OK, "")
    assert len(result.result(WAIT)) == 3


def test_a_bad_mode_is_a_value_error_listing_the_modes(make_client):
    chunkwise = make_client()
    with pytest.raises(ValueError) as raised, chunkwise.stream() as stream:
        stream.send("a", "x", mode="apend")
    assert "'auto', 'append', 'snapshot'" in str(raised.value)
    assert stream.unanswered == 0
    with pytest.raises(ValueError, match="not 'APPEND'"):
        next(chunkwise.process("a", ["x"], mode="APPEND"))
