"""The sync and async clients against a real in-process server on a loopback port.

Expected values come from the inputs and the contract (json.loads, the file-id recipe),
never from the server's own code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import uuid
from collections.abc import Iterator

import grpc
import pytest
from cut_proxy import CutProxy
from helpers import apply_ops, loads_exact

import client
from client import AsyncClient, Client, Retry
from server.engine import Append, Set

PLAN = '# Plan\n1. Read the "orders" table\n2. Sum by month — in €\n'
FILES = [
    {"name": "revenue.yml", "yml_content": "name: revenue\nsql: select sum(x)\n"},
    {"name": "users.yml", "yml_content": "name: users\n"},
]
DOCUMENT = '{"a": [1, 2.50, "x\\u00e9y"], "b": {"c": null, "d": true}, "e": 123456789012345678901}'


def pieces(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def file_id(chunk_id: str, name: str, file_type: str) -> str:
    digest = hashlib.sha256(f"{chunk_id}:{name}:{file_type}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def rebuilt(updates: list[client.ChunkUpdate]):
    ops = []
    for update in updates:
        if isinstance(update.output, client.PartialJson):
            for delta in update.output.deltas:
                if delta.set_json is not None:
                    ops.append(Set(delta.path, delta.set_json))
                else:
                    ops.append(Append(delta.path, delta.append))
    return apply_ops(ops)


@pytest.fixture
def chunkwise(grpc_server) -> Iterator[Client]:
    with Client(grpc_server.address, timeout=30) as chunkwise:
        yield chunkwise


# --- sync ------------------------------------------------------------------------------------


def test_text_processor_gives_back_exactly_the_text(chunkwise):
    text = "héllo, wörld " * 20
    updates = list(chunkwise.process("t1", pieces(text), mode="append"))
    assert "".join(u.delta for u in updates) == text
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    assert updates[-1].final and updates[-1].complete_text == text
    assert all(u.output is None and u.error is None for u in updates)


@pytest.mark.parametrize(
    ("processor", "key", "title"),
    [
        ("plan", "plan_markdown", "Creating a plan..."),
        ("search_data_catalog", "search_requirements", "Searching your data catalog..."),
    ],
)
def test_reasoning_text_processors(chunkwise, processor, key, title):
    document = json.dumps({key: PLAN})
    updates = list(chunkwise.process("r1", pieces(document), processor_type=processor))
    texts = [u.output for u in updates if u.output is not None]
    assert all(isinstance(t, client.ReasoningText) and t.title == title for t in texts)
    assert (
        "".join(t.message_chunk for t in texts[:-1] if t.status == "loading")
        + (texts[-1].message_chunk)
        == PLAN
    )
    assert texts[-1].status == "completed" and texts[-1].message == PLAN
    assert updates[-1].complete_text == document


@pytest.mark.parametrize(
    ("processor", "title"),
    [("metric", "Creating metric files..."), ("dashboard", "Creating dashboard files...")],
)
def test_reasoning_file_processors(chunkwise, processor, title):
    document = json.dumps({"files": FILES})
    updates = list(
        chunkwise.process("f1", pieces(document, 5), processor_type=processor, mode="append")
    )
    outputs = [u.output for u in updates if u.output is not None]
    assert all(isinstance(o, client.ReasoningFile) and o.title == title for o in outputs)
    *loading, final = outputs
    grown: dict[str, str] = {}
    for output in loading:
        for file in output.files:
            assert file.id == file_id("f1", file.file_name, processor)
            assert file.file_type == processor and file.version_number == 1
            grown[file.file_name] = grown.get(file.file_name, "") + file.text_chunk
    assert final.status == "completed"
    final_texts = {file.file_name: file.text for file in final.files}
    expected = {f["name"]: f["yml_content"] for f in FILES}
    assert final_texts == expected
    for name, text in grown.items():
        assert expected[name].startswith(text)


def test_json_processor_deltas_rebuild_the_value(chunkwise):
    updates = list(
        chunkwise.process("j1", pieces(DOCUMENT, 3), processor_type="json", mode="append")
    )
    assert rebuilt(updates) == loads_exact(DOCUMENT)
    assert json.loads(updates[-1].output.value_json) == json.loads(DOCUMENT)


def test_snapshot_mode_from_a_generator(chunkwise):
    def growing() -> Iterator[str]:
        for end in range(4, len(DOCUMENT) + 4, 4):
            yield DOCUMENT[:end]

    updates = list(chunkwise.process("s1", growing(), processor_type="json", mode="snapshot"))
    assert rebuilt(updates) == loads_exact(DOCUMENT)
    assert updates[-1].final and updates[-1].complete_text == DOCUMENT
    assert not any(u.reset for u in updates)


def test_a_session_interleaves_ids_and_unary_calls_see_its_state(grpc_server, chunkwise):
    with chunkwise.stream() as stream:
        stream.send("a", "one ", mode="append")
        stream.send("b", '{"plan_markdown": "x', processor_type="plan")
        stream.send("a", "two")
        updates = list(stream)
        with Client(grpc_server.address) as other:
            info = other.get_complete_text("a")
        assert info == client.TextInfo("one two", 2, "text")
        stream.send("b", "", processor_type="json")
        (refused,) = list(stream)
    assert [(u.chunk_id, u.sequence) for u in updates] == [("a", 1), ("b", 1), ("a", 2)]
    assert refused.error is not None and refused.error.status == "FAILED_PRECONDITION"
    assert chunkwise.get_complete_text("b").processor_type == "plan"
    assert chunkwise.clear_chunk("a") is True
    assert chunkwise.clear_chunk("a") is False
    with pytest.raises(client.NotFound) as raised:
        chunkwise.get_complete_text("a")
    assert raised.value.code.name == "NOT_FOUND"


def test_per_message_errors_do_not_stop_the_stream(chunkwise):
    with chunkwise.stream() as stream:
        stream.send("", "x")
        stream.send("u", "x", processor_type="no-such-processor")
        stream.send("k", "[1,]", processor_type="json", final=True)
        stream.send("ok", "fine", final=True)
        bad_id, bad_processor, bad_json, fine = list(stream)
    assert bad_id.error.status == bad_processor.error.status == "INVALID_ARGUMENT"
    assert bad_json.error.status == "INVALID_ARGUMENT" and "offset 3" in bad_json.error.message
    assert fine.error is None and fine.complete_text == "fine"


def test_raise_on_error_raises_the_class_of_the_code(chunkwise):
    with pytest.raises(client.InvalidArgument), chunkwise.stream(raise_on_error=True) as stream:
        stream.send("", "x")
        list(stream)


def test_unary_errors_are_raised_as_their_class(chunkwise):
    with pytest.raises(client.InvalidArgument):
        chunkwise.get_complete_text("")
    with pytest.raises(client.InvalidArgument):
        chunkwise.clear_chunk("x" * 1000)


def test_processors_and_health(chunkwise):
    names = [p.name for p in chunkwise.list_processors()]
    assert names == ["dashboard", "json", "metric", "plan", "search_data_catalog", "text"]
    assert chunkwise.health() == "SERVING"
    assert chunkwise.health("chunkwise.v1.StreamingParser") == "SERVING"
    assert chunkwise.health("no.such.Service") == "SERVICE_UNKNOWN"


def test_an_id_can_be_used_again_after_its_final_chunk(chunkwise):
    first = list(chunkwise.process("again", ["abc"], mode="append"))
    second = list(chunkwise.process("again", ["xyz"], mode="append"))
    assert first[-1].complete_text == "abc"
    assert second[-1].sequence == 2
    assert second[-1].error is None and second[-1].complete_text == "xyz"


# Another client numbered "resume" 1 to 3; a second one goes on, then resends from 2. The
# server keeps its last few answers per id, so each duplicate repeats its first delta.
RESUMED = [(4, "gh", False), (2, "cd", True), (3, "ef", True), (4, "gh", True), (5, "ij", False)]


def test_continue_after_numbers_above_it_and_a_resend_comes_back_a_duplicate(grpc_server):
    with Client(grpc_server.address, timeout=30) as first:
        list(first.process("resume", ["ab", "cd", "ef"], mode="append", final=False))
    with Client(grpc_server.address, timeout=30) as second:
        second.continue_after("resume", 3)
        with second.stream() as stream:
            assert stream.send("resume", "gh") == 4
            updates = list(stream)
        second.continue_after("resume", 1)
        with second.stream() as stream:
            for chunk in ("cd", "ef", "gh", "ij"):
                stream.send("resume", chunk)
            updates += list(stream)
        info = second.get_complete_text("resume")
    assert [(u.sequence, u.delta, u.duplicate) for u in updates] == RESUMED
    assert all(u.error is None for u in updates)
    assert (info.text, info.last_sequence) == ("abcdefghij", 5)


def test_continue_after_takes_a_uint64_and_a_str_id(chunkwise):
    chunkwise.continue_after("big", 2**64 - 2)
    with pytest.raises(ValueError, match="uint64"):
        chunkwise.continue_after("big", 2**64 - 1)
    with pytest.raises(ValueError, match="not -1"):
        chunkwise.continue_after("big", -1)
    with pytest.raises(TypeError):
        chunkwise.continue_after("big", True)
    with pytest.raises(TypeError):
        chunkwise.continue_after(b"big", 1)


def test_a_final_answer_over_4_mib_is_received(server_factory):
    server = server_factory(max_chunk_bytes=1 << 20, max_text_bytes=8 << 20)
    text = "x" * ((1 << 20) - 1)
    with Client(server.address) as chunkwise, chunkwise.stream() as stream:
        for _ in range(5):
            stream.send("big", text, mode="append")
        stream.send("big", "", final=True)
        *_, final = list(stream)
    assert len(final.complete_text) == 5 * len(text)


def server_survived(server) -> str:
    """A clearer failure than the client's UNAVAILABLE when the server process died."""
    status = server.process.poll()
    return "" if status is None else f"the server process died with status {status}"


# A server in a child process: a server that crashes when a connection drops fails this
# test instead of ending the whole test run.
def test_a_cut_connection_is_resumed_and_the_text_applied_exactly_once(server_process):
    server = server_process()
    proxy = CutProxy(server.port)
    parts = [f"part {i:03d};" for i in range(300)]
    retry = Retry(retries=10, initial_backoff=0.02, max_backoff=0.5)
    try:
        with Client(f"127.0.0.1:{proxy.port}", retries=retry, timeout=30) as chunkwise:
            seen = []
            with chunkwise.stream() as stream:
                for part in parts:
                    stream.send("cut", part, mode="append")
                for update in stream:
                    seen.append(update)
                    if len(seen) in (1, 150):
                        proxy.cut()
            info = chunkwise.get_complete_text("cut")
    except client.Unavailable:
        assert not server_survived(server), server_survived(server)
        raise
    finally:
        proxy.close()
    assert proxy.connections >= 3
    assert [u.sequence for u in seen] == list(range(1, 301))
    assert all(u.error is None for u in seen)
    assert info.text == "".join(parts)
    assert info.last_sequence == 300


def test_an_unreachable_server_raises_unavailable_after_the_retries():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    retry = Retry(retries=2, initial_backoff=0.01, max_backoff=0.02)
    with Client(f"127.0.0.1:{port}", retries=retry) as chunkwise:
        with pytest.raises(client.Unavailable):
            chunkwise.health()
        with pytest.raises(client.Unavailable), chunkwise.stream() as stream:
            stream.send("x", "y")
            list(stream)


# --- async -----------------------------------------------------------------------------------


def test_async_client_does_what_the_sync_one_does(grpc_server):
    async def scenario() -> None:
        async with AsyncClient(grpc_server.address, timeout=30) as chunkwise:
            updates = [
                u
                async for u in chunkwise.process(
                    "aj", pieces(DOCUMENT, 4), processor_type="json", mode="append"
                )
            ]
            assert rebuilt(updates) == loads_exact(DOCUMENT)
            assert updates[-1].complete_text == DOCUMENT

            async def plan_chunks():
                for piece in pieces(json.dumps({"plan_markdown": PLAN})):
                    await asyncio.sleep(0)
                    yield piece

            texts = [
                u.output
                async for u in chunkwise.process("ap", plan_chunks(), processor_type="plan")
                if u.output is not None
            ]
            assert texts[-1].message == PLAN

            async with chunkwise.stream() as stream:
                assert await stream.send("as", "ab", mode="append") == 1
                assert await stream.send("as", "cd") == 2
                assert [u.delta async for u in stream] == ["ab", "cd"]
                assert (await chunkwise.get_complete_text("as")).text == "abcd"
                await stream.send("", "x")
                (refused,) = [u async for u in stream]
                assert refused.error.status == "INVALID_ARGUMENT"
            assert await chunkwise.clear_chunk("as") is True
            with pytest.raises(client.NotFound):
                await chunkwise.get_complete_text("as")
            names = [p.name for p in await chunkwise.list_processors()]
            assert "json" in names and names == sorted(names)
            assert await chunkwise.health() == "SERVING"

    asyncio.run(scenario())


def test_async_continue_after_numbers_above_it_and_a_resend_comes_back_a_duplicate(grpc_server):
    async def scenario() -> tuple[list[client.ChunkUpdate], client.TextInfo]:
        async with AsyncClient(grpc_server.address, timeout=30) as first:
            chunks = ["ab", "cd", "ef"]
            [u async for u in first.process("resume", chunks, mode="append", final=False)]
        async with AsyncClient(grpc_server.address, timeout=30) as second:
            second.continue_after("resume", 3)
            async with second.stream() as stream:
                assert await stream.send("resume", "gh") == 4
                updates = [u async for u in stream]
            second.continue_after("resume", 1)
            async with second.stream() as stream:
                for chunk in ("cd", "ef", "gh", "ij"):
                    await stream.send("resume", chunk)
                updates += [u async for u in stream]
            return updates, await second.get_complete_text("resume")

    updates, info = asyncio.run(scenario())
    assert [(u.sequence, u.delta, u.duplicate) for u in updates] == RESUMED
    assert all(u.error is None for u in updates)
    assert (info.text, info.last_sequence) == ("abcdefghij", 5)


def test_async_stream_resumes_after_a_cut_connection(server_process):
    server = server_process()
    proxy = CutProxy(server.port)
    parts = [f"p{i:03d}," for i in range(200)]

    async def scenario() -> tuple[list[int], client.TextInfo]:
        retry = Retry(retries=10, initial_backoff=0.02, max_backoff=0.5)
        async with AsyncClient(f"127.0.0.1:{proxy.port}", retries=retry, timeout=30) as chunkwise:
            sequences = []
            async with chunkwise.stream() as stream:
                for part in parts:
                    await stream.send("acut", part, mode="append")
                async for update in stream:
                    sequences.append(update.sequence)
                    if len(sequences) == 100:
                        proxy.cut()
            return sequences, await chunkwise.get_complete_text("acut")

    try:
        sequences, info = asyncio.run(scenario())
    except client.Unavailable:
        assert not server_survived(server), server_survived(server)
        raise
    finally:
        proxy.close()
    assert sequences == list(range(1, 201))
    assert info.text == "".join(parts)


# --- TLS and tokens ----------------------------------------------------------------------------


def test_tls_and_bearer_tokens(server_factory, tmp_path):
    from certificates import make_pki

    pki = make_pki(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.write_text("billing 0123456789abcdef0123\nsearch fedcba9876543210fedc\n")
    tokens.chmod(0o600)
    server = server_factory(tls_cert=pki.server.cert, tls_key=pki.server.key, auth_tokens=tokens)
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.cert_pem())

    def connect(token: str | None) -> Client:
        return Client(server.address, credentials=credentials, token=token, retries=0)

    with connect("0123456789abcdef0123") as billing, connect("fedcba9876543210fedc") as search:
        updates = list(billing.process("shared-id", ["billing text"], final=False))
        assert updates[0].delta == "billing text"
        assert billing.get_complete_text("shared-id").text == "billing text"
        with pytest.raises(client.NotFound):
            search.get_complete_text("shared-id")
    for token in (None, "not-a-known-token-at-all"):
        with connect(token) as stranger:
            with pytest.raises(client.Unauthenticated):
                stranger.list_processors()
            with pytest.raises(client.Unauthenticated), stranger.stream() as stream:
                stream.send("x", "y")
                list(stream)


def test_async_unary_calls_back_off_before_giving_up():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def scenario() -> None:
        async with AsyncClient(
            f"127.0.0.1:{port}", retries=3, sleep=sleep, random_fraction=lambda: 0.0
        ) as chunkwise:
            with pytest.raises(client.Unavailable) as raised:
                await chunkwise.clear_chunk("x")
            assert isinstance(raised.value.__cause__, grpc.aio.AioRpcError)

    asyncio.run(scenario())
    # Retry's defaults with no jitter drawn: 0.1 s, doubling.
    assert waits == pytest.approx([0.1, 0.2, 0.4])
