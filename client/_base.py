"""What the sync and the async client share: settings, request building, answer handling.

Nothing here does I/O; ``Client`` and ``AsyncClient`` name their channel factories and
sleep, and make the calls. (A channel connects on its first call, not when it is made.)
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

import grpc
from chunkwise.v1 import streaming_pb2, streaming_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from . import _convert
from ._errors import FailedPrecondition, error_for_status
from ._ledger import Outstanding, Sequencer
from ._models import ChunkUpdate, Mode, UpdateError
from ._retry import Retry, as_retry, is_retryable

# Key=value fields go in ``extra={"fields": ...}``, as the server's log lines do; chunk
# text is never logged. Quiet unless the application turns INFO on.
logger = logging.getLogger("chunkwise.client")

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MAX_RECEIVE_BYTES = 64 * 1024 * 1024
"""A final answer holds the complete text and the full output: up to about twice the
server's 16 MiB text limit, past gRPC's default 4 MiB receive limit."""
MAX_SEQUENCE = 2**64 - 1
"""The highest number a request carries: ``sequence`` is a uint64."""


class BaseClient:
    """The settings and the pure logic of ``Client`` and ``AsyncClient``.

    Each client names how it dials and waits (grpc's or grpc.aio's channel factories,
    ``time.sleep`` or ``asyncio.sleep``) in the class attributes below, so that the
    constructor, its arguments and their checks are written here once.
    """

    _insecure_channel: ClassVar[Callable[..., Any]]
    _secure_channel: ClassVar[Callable[..., Any]]
    if TYPE_CHECKING:
        # A staticmethod, not a Callable class attribute: mypy takes one read on an instance
        # for a method, bound to the instance.
        @staticmethod
        def _default_sleep(seconds: float, /) -> object: ...

    # time.sleep's result or asyncio.sleep's awaitable: each client narrows it.
    _sleep: Callable[[float], object]

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = None,
        max_receive_bytes: int = DEFAULT_MAX_RECEIVE_BYTES,
        retries: int | Retry = 4,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        channel: grpc.Channel | grpc.aio.Channel | None = None,
        sleep: Callable[[float], None] | Callable[[float], Awaitable[None]] | None = None,
        random_fraction: Callable[[], float] | None = None,
    ) -> None:
        """A client of the server at ``target``; gRPC connects on the first call.

        ``target``             "host:port" of the server
        ``timeout``            seconds for each unary call; streams take their own
        ``max_receive_bytes``  the channel's receive limit; final answers can be large
        ``retries``            retries after UNAVAILABLE, or a Retry for the backoff too
        ``credentials``        grpc.ssl_channel_credentials(...) for TLS; None: plaintext
        ``token``              sent as "authorization: Bearer <token>" on every call
        ``channel``            a ready channel to use instead of dialling ``target`` (tests): a
                               grpc.Channel for Client, a grpc.aio.Channel for AsyncClient; the
                               client does not close it
        ``sleep``              how to wait between retries (tests pass a fake clock's); None:
                               time.sleep for Client, asyncio.sleep for AsyncClient
        ``random_fraction``    the source of backoff jitter, uniform in [0, 1) (tests pin it)
        """
        if not isinstance(target, str) or not target:
            raise ValueError(f"target must be 'host:port', not {target!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive or None, not {timeout}")
        if max_receive_bytes <= 0:
            raise ValueError(f"max_receive_bytes must be positive, not {max_receive_bytes}")
        self.target = target
        self.timeout = timeout
        self.max_receive_bytes = max_receive_bytes
        self.retry = as_retry(retries)
        self._credentials = credentials
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._sleep = self._default_sleep if sleep is None else sleep
        self._random_fraction = random_fraction or random.random
        self._sequencer = Sequencer()
        self._owns_channel = channel is None
        if channel is None:
            channel = self._dial()
        self._channel = channel
        self._stub = streaming_pb2_grpc.StreamingParserStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)

    def continue_after(self, chunk_id: str, sequence: int) -> None:
        """Number the next chunk of ``chunk_id`` ``sequence + 1``, on every stream of this client.

        A client numbers each id's chunks from 1, and the server answers a number at or below
        the last one it applied for the id with ``duplicate`` set, changing nothing. So:

        - to go on with an id that another client or process numbered, continue after the
          server's last number, ``get_complete_text(chunk_id).last_sequence``;
        - to resend after a crash, continue after the last chunk known to be applied (0: from
          the first) and send the chunks from there: those already applied come back with
          ``duplicate`` set (and their first delta and output while the server keeps them),
          the others are applied, each once.

        ``sequence`` may be below the number this client would give next. Only after this
        call are duplicates passed on as the server sent them: otherwise a chunk sent once
        and answered as a duplicate lost its number to an earlier stream, and its update
        carries a FAILED_PRECONDITION error. Makes no call.
        """
        if not isinstance(chunk_id, str):
            raise TypeError(f"chunk_id must be a str, not {type(chunk_id).__name__}")
        if isinstance(sequence, bool) or not isinstance(sequence, int):
            raise TypeError(f"sequence must be an int, not {type(sequence).__name__}")
        if not 0 <= sequence < MAX_SEQUENCE:
            raise ValueError(
                f"sequence must be from 0 to {MAX_SEQUENCE - 1} (the next one must fit the "
                f"proto's uint64), not {sequence}"
            )
        self._sequencer.continue_after(chunk_id, sequence)

    def _dial(self) -> Any:
        options = [("grpc.max_receive_message_length", self.max_receive_bytes)]
        if self._credentials is None:
            return self._insecure_channel(self.target, options=options)
        return self._secure_channel(self.target, self._credentials, options=options)

    def _retry_delay(self, exc: grpc.RpcError, failures: int, call: str) -> float | None:
        """Seconds to wait before trying again after the ``failures``-th failure in a row,
        or None when ``exc`` is final."""
        if not is_retryable(exc) or not self.retry.allows(failures):
            return None
        delay = self.retry.backoff(failures, self._random_fraction())
        logger.info(
            "retrying",
            extra={
                "fields": {
                    "call": call,
                    "status": exc.code().name,
                    "failure": failures,
                    "delay": round(delay, 3),
                }
            },
        )
        return delay

    @staticmethod
    def _call_name(request: Any) -> str:
        return type(request).__name__.removesuffix("Request")

    @staticmethod
    def _health_request(service: str) -> health_pb2.HealthCheckRequest:
        return health_pb2.HealthCheckRequest(service=service)

    @staticmethod
    def _health_status(response: health_pb2.HealthCheckResponse) -> str:
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


class BaseStream:
    """The bookkeeping of one ProcessChunks stream: numbering, unanswered requests, retries."""

    def __init__(self, client: BaseClient, *, raise_on_error: bool, timeout: float | None) -> None:
        self._client = client
        self._raise_on_error = raise_on_error
        self._timeout = timeout
        self._outstanding = Outstanding()
        self._failures = 0
        self._half_closed = False

    @property
    def unanswered(self) -> int:
        """How many requests sent on this stream have no answer yet."""
        return len(self._outstanding)

    def _new_request(
        self,
        chunk_id: str,
        chunk: str,
        processor_type: str,
        mode: Mode | None,
        final: bool,
    ) -> streaming_pb2.ProcessChunksRequest:
        if self._half_closed:
            raise RuntimeError("this stream is closed for sending")
        request = _convert.chunk_request(
            chunk_id, chunk, processor_type=processor_type, mode=mode, final=final, sequence=0
        )
        # Numbered only once the request is known to be well formed.
        request.sequence, placed = self._client._sequencer.next(chunk_id)
        self._outstanding.add(request, placed=placed)
        return request

    def _update(self, response: streaming_pb2.ProcessChunksResponse) -> ChunkUpdate:
        pending = self._outstanding.answer(response)
        self._failures = 0
        update = _convert.chunk_update(response)
        if response.duplicate and pending.sends == 1 and not pending.placed:
            # Sent once and already applied: the number this client counted was used before,
            # by an earlier stream on this id, so this chunk's text was dropped. Never pass
            # that off as the chunk's own answer. (A number continue_after placed is the
            # caller's, who may be resending on purpose: its duplicate goes through as is.)
            update = dataclasses.replace(
                update,
                delta="",
                output=None,
                error=UpdateError(
                    code=FailedPrecondition.grpc_status_code.value[0],
                    message=(
                        f"sequence {response.sequence} of {response.chunk_id!r} is not above "
                        "the last one the server applied for it (an earlier stream used this "
                        "id), so the chunk was not applied; clear the id or use a new one"
                    ),
                ),
            )
        if self._raise_on_error and update.error is not None:
            raise error_for_status(update.error.code, update.error.message)
        return update

    def _retry_delay(self, exc: grpc.RpcError) -> float | None:
        self._failures += 1
        delay = self._client._retry_delay(exc, self._failures, "ProcessChunks")
        if delay is not None:
            logger.info("resuming stream", extra={"fields": {"unanswered": len(self._outstanding)}})
        return delay
