"""Callers and their namespaces: bearer tokens from `--auth-tokens FILE`.

The token file has one `namespace token` pair a line, separated by whitespace; blank lines
and lines starting with `#` are skipped:

    # namespace   token
    billing       2f6c8e0b9d4a47c1a3e5b7d9f1a2c4e6
    billing       9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a
    search        c0ffee00c0ffee00c0ffee00c0ffee00

A namespace may have several tokens (to rotate one without downtime); a token belongs to one
namespace. Tokens are printable ASCII without spaces, at least MIN_TOKEN_CHARS long. (A `#`
after a token would be read as a third field and refused, not as a comment.)

Every StreamingParser call then carries the metadata `authorization: Bearer <token>`; a call
without an accepted token ends with UNAUTHENTICATED, and an accepted one runs in its token's
namespace, so two tenants using the same chunk id never see each other's text. Without a
token file every call runs in DEFAULT_NAMESPACE.

`AuthInterceptor` does this once per call, before any handler runs, for every service but
the exempt ones (health and reflection): a method added to the servicer is covered without
a line of its own. The handler reads its call's namespace from `current_namespace`.

Tokens are never logged, never kept in memory in the clear after loading (only their SHA-256
digests), and never quoted in an error message, not even for a malformed file.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import stat
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

import grpc

from server._files import SettingsFileError, read_text
from server._logging import get_logger, log_event

_log = get_logger("auth")

TOKENS_FLAG = "--auth-tokens"
DEFAULT_NAMESPACE = ""
MIN_TOKEN_CHARS = 16
METADATA_KEY = "authorization"
SCHEME = "bearer"


#: The namespace of the call being handled. `AuthInterceptor` sets it in the call's own task,
#: the one its handler then runs in. No default: a handler reached without the interceptor
#: fails with LookupError rather than run in a namespace nobody chose.
current_namespace: ContextVar[str] = ContextVar("chunkwise_namespace")


class Authenticator(Protocol):
    def resolve(self, metadata: Iterable[tuple[str, str | bytes]]) -> tuple[str | None, str]:
        """(namespace, "") for a caller let in, else (None, why it was refused)."""
        ...


class OpenAccess:
    """No token file: every caller is let in, all in the default namespace."""

    def resolve(self, metadata: Iterable[tuple[str, str | bytes]]) -> tuple[str | None, str]:
        return DEFAULT_NAMESPACE, ""


class BearerTokens:
    """Callers named by the bearer token in their `authorization` metadata."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        """`pairs` are (namespace, token)."""
        self._digests = [(_digest(token), namespace) for namespace, token in pairs]

    def __len__(self) -> int:
        return len(self._digests)

    def resolve(self, metadata: Iterable[tuple[str, str | bytes]]) -> tuple[str | None, str]:
        """(namespace, "") for an accepted token, else (None, why it was refused)."""
        values = [value for key, value in metadata if key.lower() == METADATA_KEY]
        if not values:
            return None, "missing 'authorization: Bearer <token>' metadata"
        if len(values) > 1:
            return None, "more than one authorization metadata entry"
        value = values[0]
        if isinstance(value, bytes):
            return None, "the authorization metadata is not 'Bearer <token>'"
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != SCHEME or not token:
            return None, "the authorization metadata is not 'Bearer <token>'"
        namespace = self._match(token)
        if namespace is None:
            return None, "the bearer token is not accepted"
        return namespace, ""

    def _match(self, token: str) -> str | None:
        presented = _digest(token)
        found = None
        # Every configured token is compared, in constant time, and the loop never stops
        # early: how long a refusal takes says nothing about which token came close. The
        # digests have one length, so the length of a real token does not leak either.
        for digest, namespace in self._digests:
            if hmac.compare_digest(presented, digest) and found is None:
                found = namespace
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


_Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Lets a call in, in its namespace (see `current_namespace`), or refuses it with
    UNAUTHENTICATED before its handler runs: a refused stream gets no response at all."""

    def __init__(self, authenticator: Authenticator, exempt_services: Iterable[str]) -> None:
        self._authenticator = authenticator
        self._exempt = tuple(f"/{service}/" for service in exempt_services)

    async def intercept_service(
        self, continuation: _Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._exempt):
            return handler
        namespace, refusal = self._authenticator.resolve(
            handler_call_details.invocation_metadata or ()
        )
        if namespace is None:
            return _refusing(handler, refusal)
        # This coroutine runs in the task grpc.aio made for the call, and the handler runs
        # next in that same task, so it sees the value; no other call does.
        current_namespace.set(namespace)
        return handler


def _refusing(handler: grpc.RpcMethodHandler, refusal: str) -> grpc.RpcMethodHandler:
    """A handler of `handler`'s shape that logs the refusal and aborts the call."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        log_event(_log, logging.DEBUG, "call refused", peer=context.peer(), reason=refusal)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, refusal)

    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **codecs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **codecs)
    return grpc.unary_unary_rpc_method_handler(refuse, **codecs)


def authenticator(tokens_file: Path | None) -> Authenticator:
    """OpenAccess without a token file, else its BearerTokens (see `load_tokens`)."""
    if tokens_file is None:
        return OpenAccess()
    return load_tokens(tokens_file)


def load_tokens(path: Path) -> BearerTokens:
    """Read a token file; raises SettingsFileError naming the line of any mistake."""
    text = read_text(TOKENS_FLAG, path)
    pairs: list[tuple[str, str]] = []
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            problem = f"expected 2 fields, 'namespace token'; found {len(fields)}"
            raise SettingsFileError(TOKENS_FLAG, path, f"line {number}: {problem}")
        namespace, token = fields
        if not (token.isascii() and token.isprintable()):
            raise SettingsFileError(
                TOKENS_FLAG, path, f"line {number}: a token must be printable ASCII"
            )
        if len(token) < MIN_TOKEN_CHARS:
            raise SettingsFileError(
                TOKENS_FLAG,
                path,
                f"line {number}: token shorter than {MIN_TOKEN_CHARS} characters",
            )
        if token in first_line_of:
            raise SettingsFileError(
                TOKENS_FLAG,
                path,
                f"line {number}: the same token is on line {first_line_of[token]}",
            )
        first_line_of[token] = number
        pairs.append((namespace, token))
    if not pairs:
        raise SettingsFileError(TOKENS_FLAG, path, "holds no tokens")
    _warn_if_others_can_read(path)
    return BearerTokens(pairs)


def _warn_if_others_can_read(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IROTH:
        log_event(
            _log,
            logging.WARNING,
            "token file readable by every user",
            path=str(path),
            mode=oct(stat.S_IMODE(mode)),
        )
