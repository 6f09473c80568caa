"""TLS, mutual TLS and per-namespace bearer tokens, through real servers and real channels."""

from __future__ import annotations

import asyncio
import hmac
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from certificates import Identity, Pki, encrypted_key, make_pki
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_server import REPO, TIMEOUT, InProcessServer

from server import auth
from server._files import SettingsFileError
from server.app import create_server
from server.cli import parse_config
from server.config import Config

GRPCURL = Path(sys.executable).parent / "grpcurl"

BILLING_TOKEN = "billing-7f3a9c1e5b2d4f60"
BILLING_NEXT_TOKEN = "billing-rotated-0a1b2c3d4e"
SEARCH_TOKEN = "search-1d2e3f4a5b6c7d8e"
#: Close to a real one: same length and prefix, one character off.
WRONG_TOKEN = "billing-7f3a9c1e5b2d4f61"

ServerFactory = Callable[..., InProcessServer]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(
        "# namespace  token\n"
        f"billing  {BILLING_TOKEN}\n"
        "\n"
        f"   billing\t{BILLING_NEXT_TOKEN}\n"
        f"search   {SEARCH_TOKEN}\n"
    )
    return path


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def trusting(pki: Pki, client: Identity | None = None) -> grpc.ChannelCredentials:
    """Client credentials that trust the test CA, presenting `client`'s certificate if given."""
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=pki.ca.cert_pem())
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.cert_pem(),
        private_key=client.key_pem(),
        certificate_chain=client.cert_pem(),
    )


def round_trip(channel: grpc.Channel) -> str:
    """Send a chunk on a stream and read the text back with a unary call."""
    stub = pb_grpc.StreamingParserStub(channel)
    responses = stub.ProcessChunks(
        iter([pb.ProcessChunksRequest(chunk_id="greeting", chunk="hello over TLS")]),
        timeout=TIMEOUT,
    )
    assert [response.delta for response in responses] == ["hello over TLS"]
    return stub.GetCompleteText(
        pb.GetCompleteTextRequest(chunk_id="greeting"), timeout=TIMEOUT
    ).text


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def list_processors(channel: grpc.Channel) -> None:
    pb_grpc.StreamingParserStub(channel).ListProcessors(pb.ListProcessorsRequest(), timeout=TIMEOUT)


# --------------------------------------------------------------------------- TLS


def test_a_call_over_tls_works(server_factory: ServerFactory, pki: Pki) -> None:
    server = server_factory(tls_cert=pki.server.cert, tls_key=pki.server.key)
    with server.secure_channel(trusting(pki)) as channel:
        assert round_trip(channel) == "hello over TLS"


def test_a_plaintext_client_is_refused_by_a_tls_server(
    server_factory: ServerFactory, pki: Pki
) -> None:
    server = server_factory(tls_cert=pki.server.cert, tls_key=pki.server.key)
    with server.channel() as channel:
        assert refusal(lambda: list_processors(channel)).code() == grpc.StatusCode.UNAVAILABLE
    with server.secure_channel(trusting(pki)) as channel:
        list_processors(channel)


@pytest.fixture
def mutual_tls_server(server_factory: ServerFactory, pki: Pki) -> InProcessServer:
    return server_factory(
        tls_cert=pki.server.cert, tls_key=pki.server.key, tls_client_ca=pki.ca.cert
    )


def test_mutual_tls_refuses_a_client_without_a_certificate(
    mutual_tls_server: InProcessServer, pki: Pki
) -> None:
    with mutual_tls_server.secure_channel(trusting(pki)) as channel:
        assert refusal(lambda: list_processors(channel)).code() == grpc.StatusCode.UNAVAILABLE
    with mutual_tls_server.secure_channel(trusting(pki, pki.client)) as channel:
        list_processors(channel)


def test_mutual_tls_refuses_a_certificate_from_another_ca(
    mutual_tls_server: InProcessServer, pki: Pki
) -> None:
    with mutual_tls_server.secure_channel(trusting(pki, pki.stranger)) as channel:
        assert refusal(lambda: list_processors(channel)).code() == grpc.StatusCode.UNAVAILABLE
    with mutual_tls_server.secure_channel(trusting(pki, pki.client)) as channel:
        list_processors(channel)


def test_mutual_tls_accepts_a_certificate_signed_by_the_ca(
    mutual_tls_server: InProcessServer, pki: Pki
) -> None:
    with mutual_tls_server.secure_channel(trusting(pki, pki.client)) as channel:
        assert round_trip(channel) == "hello over TLS"


# --------------------------------------------------------------------------- start-up errors


def start(config: Config) -> None:
    """Build a server the way `python -m server` does; the cases here fail before it binds."""

    async def build() -> None:
        server, _ = await create_server(config)
        await server.stop(0)

    asyncio.run(build())


def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.pem"
    path.write_text("not a PEM file\n")
    return path


@pytest.mark.parametrize(
    ("settings", "flag", "problem"),
    [
        (lambda p, t: {"tls_cert": t / "missing.crt", "tls_key": p.server.key}, "--tls-cert",
         "no such file"),
        (lambda p, t: {"tls_cert": p.server.cert, "tls_key": t / "missing.key"}, "--tls-key",
         "no such file"),
        (lambda p, t: {"tls_cert": t, "tls_key": p.server.key}, "--tls-cert", "directory"),
        (lambda p, t: {"tls_cert": garbage(t), "tls_key": p.server.key}, "--tls-cert",
         "no PEM certificate"),
        (lambda p, t: {"tls_cert": p.server.cert, "tls_key": garbage(t)}, "--tls-key",
         "no PEM private key"),
        (lambda p, t: {"tls_cert": p.server.cert, "tls_key": p.server.cert}, "--tls-key",
         "no PEM private key"),
        (lambda p, t: {"tls_cert": p.server.cert, "tls_key": p.client.key}, "--tls-key",
         "does not belong to the certificate"),
        (lambda p, t: {"tls_cert": p.server.cert,
                       "tls_key": encrypted_key(p.server, t / "locked.key")}, "--tls-key",
         "encrypted"),
        (lambda p, t: {"tls_cert": p.server.cert, "tls_key": p.server.key,
                       "tls_client_ca": t / "missing-ca.crt"}, "--tls-client-ca",
         "no such file"),
        (lambda p, t: {"tls_cert": p.server.cert, "tls_key": p.server.key,
                       "tls_client_ca": garbage(t)}, "--tls-client-ca", "no PEM certificate"),
        (lambda p, t: {"auth_tokens": t / "missing-tokens"}, "--auth-tokens", "no such file"),
    ],
    ids=["missing cert", "missing key", "cert is a directory", "cert not PEM", "key not PEM",
         "key is a cert", "key of another cert", "encrypted key", "missing client CA",
         "client CA not PEM", "missing token file"],
)  # fmt: skip
def test_a_file_that_cannot_be_used_stops_start_up_naming_its_flag(
    pki: Pki, tmp_path: Path, settings: Callable[[Pki, Path], dict], flag: str, problem: str
) -> None:
    with pytest.raises(SettingsFileError) as error:
        start(Config(host="127.0.0.1", port=0, **settings(pki, tmp_path)))
    assert error.value.flag == flag
    assert str(error.value).startswith(f"{flag} {error.value.path}: ")
    assert problem in str(error.value)


def test_an_unreadable_file_names_its_flag(pki: Pki, tmp_path: Path) -> None:
    key = tmp_path / "unreadable.key"
    key.write_bytes(pki.server.key_pem())
    key.chmod(0)
    if _readable(key):
        pytest.skip("running as a user who can read any file")
    with pytest.raises(SettingsFileError, match="--tls-key .*permission denied"):
        start(Config(tls_cert=pki.server.cert, tls_key=key))


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True


@pytest.mark.parametrize(
    ("flags", "needed"),
    [(["--tls-key=k.pem"], "needs tls_cert (--tls-cert)"),
     (["--tls-cert=c.pem"], "needs tls_key (--tls-key)"),
     (["--tls-client-ca=ca.pem"], "needs tls_cert (--tls-cert)")],
)  # fmt: skip
def test_half_a_tls_setting_is_a_usage_error_naming_the_missing_flag(
    flags: list[str], needed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(flags)
    assert exit_info.value.code == 2
    assert needed in capsys.readouterr().err


def test_python_m_server_exits_1_naming_the_flag_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "server.crt"
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port=0", f"--tls-cert={missing}",
         f"--tls-key={missing}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == f"chunkwise: --tls-cert {missing}: no such file\n"
    assert result.stdout == ""


# --------------------------------------------------------------------------- token file


def test_a_token_file_may_give_a_namespace_several_tokens(tokens_file: Path) -> None:
    tokens = auth.load_tokens(tokens_file)
    assert len(tokens) == 3
    assert tokens.resolve(bearer(BILLING_TOKEN)) == ("billing", "")
    assert tokens.resolve(bearer(BILLING_NEXT_TOKEN)) == ("billing", "")
    assert tokens.resolve(bearer(SEARCH_TOKEN)) == ("search", "")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("billing\n", "line 1: expected 2 fields, 'namespace token'; found 1"),
        (f"# ok\nbilling {BILLING_TOKEN} extra\n",
         "line 2: expected 2 fields, 'namespace token'; found 3"),
        (f"billing {BILLING_TOKEN} # a comment\n",
         "line 1: expected 2 fields, 'namespace token'; found 5"),
        ("billing short-token\n", "line 1: token shorter than 16 characters"),
        ("billing tökén-with-ümlauts-äöü\n", "line 1: a token must be printable ASCII"),
        (f"billing {BILLING_TOKEN}\nsearch {BILLING_TOKEN}\n",
         "line 2: the same token is on line 1"),
        ("# only comments\n\n", "holds no tokens"),
        ("", "holds no tokens"),
    ],
)  # fmt: skip
def test_a_bad_token_file_is_refused_naming_the_line_never_the_token(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(SettingsFileError) as error:
        auth.load_tokens(path)
    assert str(error.value) == f"--auth-tokens {path}: {problem}"


def test_two_authorization_entries_are_refused_even_when_both_are_good(tokens_file: Path) -> None:
    tokens = auth.load_tokens(tokens_file)
    namespace, reason = tokens.resolve(bearer(BILLING_TOKEN) + bearer(SEARCH_TOKEN))
    assert namespace is None
    assert reason == "more than one authorization metadata entry"


def test_every_configured_token_is_compared_in_constant_time(
    tokens_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = auth.load_tokens(tokens_file)
    compared: list[tuple[bytes, bytes]] = []
    real_compare_digest = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real_compare_digest(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", compare_digest)
    # The first token matches, and the rest are still compared.
    assert tokens.resolve(bearer(BILLING_TOKEN))[0] == "billing"
    assert len(compared) == 3
    compared.clear()
    assert tokens.resolve(bearer(WRONG_TOKEN))[0] is None
    assert len(compared) == 3
    assert len({b for _, b in compared}) == 3


# --------------------------------------------------------------------------- bearer tokens


@pytest.fixture
def tenant_server(server_factory: ServerFactory, tokens_file: Path) -> InProcessServer:
    return server_factory(auth_tokens=tokens_file)


@pytest.fixture
def tenant_channel(tenant_server: InProcessServer) -> Iterator[grpc.Channel]:
    with tenant_server.channel() as channel:
        yield channel


@pytest.fixture
def tenant_stub(tenant_channel: grpc.Channel) -> pb_grpc.StreamingParserStub:
    return pb_grpc.StreamingParserStub(tenant_channel)


def every_rpc(stub: pb_grpc.StreamingParserStub, metadata: tuple) -> dict[str, Callable]:
    def process_chunks() -> list[pb.ProcessChunksResponse]:
        requests = iter([pb.ProcessChunksRequest(chunk_id="doc", chunk="secret text")])
        responses = stub.ProcessChunks(requests, metadata=metadata, timeout=TIMEOUT)
        received = []
        try:
            for response in responses:
                received.append(response)
        except grpc.RpcError:
            # The stream fails before any response: nothing may have been received.
            assert received == []
            raise
        return received

    return {
        "ProcessChunks": process_chunks,
        "GetCompleteText": lambda: stub.GetCompleteText(
            pb.GetCompleteTextRequest(chunk_id="doc"), metadata=metadata, timeout=TIMEOUT
        ),
        "ClearChunk": lambda: stub.ClearChunk(
            pb.ClearChunkRequest(chunk_id="doc"), metadata=metadata, timeout=TIMEOUT
        ),
        "ListProcessors": lambda: stub.ListProcessors(
            pb.ListProcessorsRequest(), metadata=metadata, timeout=TIMEOUT
        ),
    }


RPCS = ["ProcessChunks", "GetCompleteText", "ClearChunk", "ListProcessors"]


@pytest.mark.parametrize("rpc", RPCS)
def test_a_call_without_a_token_is_unauthenticated(
    tenant_stub: pb_grpc.StreamingParserStub, rpc: str
) -> None:
    error = refusal(every_rpc(tenant_stub, ())[rpc])
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in error.details()


SERVICE = pb.DESCRIPTOR.services_by_name["StreamingParser"]


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=lambda method: method.name)
def test_every_method_of_the_service_is_refused_without_a_token(
    tenant_channel: grpc.Channel, method
) -> None:
    # From the descriptor, not a list of names: a method added later is checked too.
    path = f"/{SERVICE.full_name}/{method.name}"
    shape = {
        (False, False): tenant_channel.unary_unary,
        (False, True): tenant_channel.unary_stream,
        (True, False): tenant_channel.stream_unary,
        (True, True): tenant_channel.stream_stream,
    }[method.client_streaming, method.server_streaming]
    call = shape(path, request_serializer=None, response_deserializer=None)
    # An empty message: every request type parses it.
    request = iter([b""]) if method.client_streaming else b""

    def invoke() -> None:
        result = call(request, timeout=TIMEOUT)
        if method.server_streaming:
            list(result)

    error = refusal(invoke)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in error.details()


def test_a_call_to_any_service_but_health_and_reflection_needs_a_token(tokens_file: Path) -> None:
    """The interceptor decides by service, before any handler: a method the servicer gains
    later, or a whole new service, is refused without a token like the others."""
    interceptor = auth.AuthInterceptor(
        auth.load_tokens(tokens_file), exempt_services=("grpc.health.v1.Health",)
    )

    async def handler(request: object, context: object) -> str:
        return auth.current_namespace.get()

    original = grpc.unary_unary_rpc_method_handler(handler)

    async def continuation(details: object) -> grpc.RpcMethodHandler:
        return original

    def intercepted(method: str, metadata: tuple) -> grpc.RpcMethodHandler:
        details = SimpleNamespace(method=method, invocation_metadata=metadata)
        return asyncio.run(interceptor.intercept_service(continuation, details))

    for method in ("/chunkwise.v1.StreamingParser/AddedLater", "/chunkwise.v2.Other/Call"):
        assert intercepted(method, ()) is not original
        assert intercepted(method, bearer(SEARCH_TOKEN)) is original
    assert intercepted("/grpc.health.v1.Health/Check", ()) is original


@pytest.mark.parametrize("rpc", RPCS)
def test_a_call_with_a_wrong_token_is_unauthenticated(
    tenant_stub: pb_grpc.StreamingParserStub, rpc: str
) -> None:
    error = refusal(every_rpc(tenant_stub, bearer(WRONG_TOKEN))[rpc])
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert WRONG_TOKEN not in error.details()


@pytest.mark.parametrize(
    "value",
    [BILLING_TOKEN, f"Basic {BILLING_TOKEN}", "Bearer", "Bearer ", f"Bearer{BILLING_TOKEN}",
     f"Bearer {BILLING_TOKEN[:-1]}", f"Bearer {BILLING_TOKEN}x"],
)  # fmt: skip
def test_an_authorization_that_is_not_bearer_and_a_known_token_is_unauthenticated(
    tenant_stub: pb_grpc.StreamingParserStub, value: str
) -> None:
    error = refusal(
        lambda: tenant_stub.ListProcessors(
            pb.ListProcessorsRequest(), metadata=(("authorization", value),), timeout=TIMEOUT
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("rpc", RPCS)
def test_a_call_with_a_good_token_works(tenant_stub: pb_grpc.StreamingParserStub, rpc: str) -> None:
    every_rpc(tenant_stub, bearer(SEARCH_TOKEN))["ProcessChunks"]()
    every_rpc(tenant_stub, bearer(SEARCH_TOKEN))[rpc]()


def test_the_scheme_is_case_insensitive(tenant_stub: pb_grpc.StreamingParserStub) -> None:
    response = tenant_stub.ListProcessors(
        pb.ListProcessorsRequest(),
        metadata=(("authorization", f"bearer {SEARCH_TOKEN}"),),
        timeout=TIMEOUT,
    )
    assert "json" in [processor.name for processor in response.processors]


# --------------------------------------------------------------------------- tenants


class Tenant:
    """One caller of a token-protected server: its own token on every call."""

    def __init__(self, stub: pb_grpc.StreamingParserStub, token: str) -> None:
        self._stub = stub
        self._metadata = bearer(token)

    def write(self, chunk_id: str, *chunks: str) -> list[pb.ProcessChunksResponse]:
        requests = [
            pb.ProcessChunksRequest(chunk_id=chunk_id, chunk=chunk, mode=pb.DELTA_MODE_APPEND)
            for chunk in chunks
        ]
        return list(
            self._stub.ProcessChunks(iter(requests), metadata=self._metadata, timeout=TIMEOUT)
        )

    def read(self, chunk_id: str) -> str:
        return self._stub.GetCompleteText(
            pb.GetCompleteTextRequest(chunk_id=chunk_id), metadata=self._metadata, timeout=TIMEOUT
        ).text

    def clear(self, chunk_id: str) -> bool:
        return self._stub.ClearChunk(
            pb.ClearChunkRequest(chunk_id=chunk_id), metadata=self._metadata, timeout=TIMEOUT
        ).cleared


@pytest.fixture
def billing(tenant_stub: pb_grpc.StreamingParserStub) -> Tenant:
    return Tenant(tenant_stub, BILLING_TOKEN)


@pytest.fixture
def search(tenant_stub: pb_grpc.StreamingParserStub) -> Tenant:
    return Tenant(tenant_stub, SEARCH_TOKEN)


def test_a_tenant_cannot_read_another_tenants_id(billing: Tenant, search: Tenant) -> None:
    billing.write("answer", "billing's ", "private text")
    error = refusal(lambda: search.read("answer"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert billing.read("answer") == "billing's private text"


def test_a_tenant_writing_the_same_id_gets_its_own_and_leaves_the_others_text(
    billing: Tenant, search: Tenant
) -> None:
    billing.write("answer", "billing's text")
    responses = search.write("answer", "search's text")
    assert [(r.delta, r.HasField("error")) for r in responses] == [("search's text", False)]
    assert search.read("answer") == "search's text"
    assert billing.read("answer") == "billing's text"


def test_a_tenant_cannot_clear_another_tenants_id(billing: Tenant, search: Tenant) -> None:
    billing.write("answer", "billing's text")
    assert search.clear("answer") is False
    assert billing.read("answer") == "billing's text"
    assert billing.clear("answer") is True


def test_tokens_of_one_namespace_share_its_ids(
    tenant_stub: pb_grpc.StreamingParserStub, billing: Tenant
) -> None:
    billing.write("answer", "written with the old token")
    rotated = Tenant(tenant_stub, BILLING_NEXT_TOKEN)
    assert rotated.read("answer") == "written with the old token"


def test_without_a_token_file_every_caller_shares_the_default_namespace(
    stub: pb_grpc.StreamingParserStub,
) -> None:
    Tenant(stub, BILLING_TOKEN).write("answer", "one namespace")
    assert Tenant(stub, SEARCH_TOKEN).read("answer") == "one namespace"
    untokened = stub.GetCompleteText(pb.GetCompleteTextRequest(chunk_id="answer"), timeout=TIMEOUT)
    assert untokened.text == "one namespace"


def test_health_and_reflection_answer_without_a_token(tenant_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(tenant_channel)
    for service in ("", "chunkwise.v1.StreamingParser"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    services = ProtoReflectionDescriptorDatabase(tenant_channel).get_services()
    assert "chunkwise.v1.StreamingParser" in services


# --------------------------------------------------------------------------- together


def grpcurl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GRPCURL), *args], input=stdin, capture_output=True, text=True, timeout=TIMEOUT
    )


def test_grpcurl_with_a_client_certificate_and_a_token(
    server_factory: ServerFactory, pki: Pki, tokens_file: Path
) -> None:
    server = server_factory(
        tls_cert=pki.server.cert,
        tls_key=pki.server.key,
        tls_client_ca=pki.ca.cert,
        auth_tokens=tokens_file,
    )
    tls = ["-cacert", str(pki.ca.cert), "-cert", str(pki.client.cert), "-key", str(pki.client.key)]
    token = ["-H", f"authorization: Bearer {BILLING_TOKEN}"]
    method = "chunkwise.v1.StreamingParser/ProcessChunks"
    written = grpcurl(*tls, *token, "-d", "@", server.address, method,
                      stdin='{"chunk_id": "answer", "chunk": "hi", "final": true}')  # fmt: skip
    assert written.returncode == 0, written.stderr
    # grpcurl prints proto field names.
    assert '"complete_text": "hi"' in written.stdout
    listed = grpcurl(*tls, server.address, "list")
    assert listed.returncode == 0, listed.stderr
    assert "chunkwise.v1.StreamingParser" in listed.stdout.split()
    refused = grpcurl(*tls, server.address, "chunkwise.v1.StreamingParser/ListProcessors")
    assert refused.returncode != 0
    assert "Unauthenticated" in refused.stderr


def test_debug_logs_hold_neither_tokens_nor_chunk_text(
    server_process: Callable, pki: Pki, tokens_file: Path
) -> None:
    chunk_text = "the-secret-chunk-text"
    server = server_process(
        "--log-level=debug",
        "--log-format=logfmt",
        f"--tls-cert={pki.server.cert}",
        f"--tls-key={pki.server.key}",
        f"--auth-tokens={tokens_file}",
    )
    with grpc.secure_channel(server.address, trusting(pki)) as channel:
        stub = pb_grpc.StreamingParserStub(channel)
        billing = Tenant(stub, BILLING_TOKEN)
        billing.write("answer", chunk_text)
        billing.write("json-answer", '{"broken": ' + chunk_text)
        responses = stub.ProcessChunks(
            iter([pb.ProcessChunksRequest(chunk_id="plan", chunk=chunk_text, processor_type="plan",
                                          final=True)]),
            metadata=bearer(BILLING_TOKEN),
            timeout=TIMEOUT,
        )  # fmt: skip
        assert [r.error.code for r in responses] == [grpc.StatusCode.INVALID_ARGUMENT.value[0]]
        assert billing.read("answer") == chunk_text
        for stranger in (Tenant(stub, WRONG_TOKEN), Tenant(stub, SEARCH_TOKEN[:-1])):
            error = refusal(lambda stranger=stranger: stranger.read("answer"))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    server.terminate()
    status, _, stderr = server.wait()
    assert status == 0
    events = [line for line in stderr.splitlines() if "event=" in line]
    listening = next(line for line in events if "event=listening" in line)
    assert "tls=True client_certificates=False bearer_tokens=True" in listening
    assert sum('event="call refused"' in line for line in events) == 2
    assert any('event="stream opened"' in line for line in events)
    for secret in (chunk_text, BILLING_TOKEN, WRONG_TOKEN, SEARCH_TOKEN[:-1]):
        assert secret not in stderr
