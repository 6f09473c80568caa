"""Assembles the gRPC server: the service, health, reflection, idle expiry, graceful stop."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from server import auth
from server._drain import DrainGate
from server._health import SERVING, DrainingHealthServicer
from server._logging import get_logger, log_event
from server._workers import engine_executor
from server.config import Config
from server.event_loop import running_loop_kind
from server.metrics import ServiceCollector, ServiceMetrics
from server.metrics_endpoint import MetricsEndpoint
from server.servicer import OFFLOAD_CHARS, StreamingParserServicer, add_to_server
from server.streams import Streams
from server.tls import server_credentials

_log = get_logger("app")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["StreamingParser"].full_name
EXPIRE_INTERVAL = 1.0
#: The GIL switch interval `serve()` sets (seconds); see there.
SWITCH_INTERVAL = 0.00025
#: On a graceful stop, gRPC itself is stopped once no call is open and none was refused
#: for this many seconds (see server/_drain.py), or at the end of the grace period.
DRAIN_QUIET = 1.0
# Engine work is CPU-bound and holds the GIL, so more threads add no throughput; a few let
# several streams with big chunks take turns instead of queueing behind one another.
_WORKER_THREADS = 4


class BindError(OSError):
    """The listening address could not be bound (in use, or not an address of this host)."""


class Server:
    """A chunkwise server: a grpc.aio server plus what lives beside it.

    `stop(grace)` is the graceful stop: new calls are refused with UNAVAILABLE and health
    goes NOT_SERVING (open health watches see it and end) at once; open calls run on for up
    to `grace` seconds, then the rest are cancelled. It returns once none is left.
    """

    def __init__(
        self,
        grpc_server: grpc.aio.Server,
        streams: Streams,
        health_servicer: DrainingHealthServicer,
        executor: ThreadPoolExecutor,
        drain_gate: DrainGate,
        metrics: ServiceMetrics | None = None,
        metrics_endpoint: MetricsEndpoint | None = None,
    ) -> None:
        self.grpc_server = grpc_server
        self.streams = streams
        self.health = health_servicer
        self.metrics = metrics
        #: The port /metrics is served on; None without --metrics-port.
        self.metrics_port = None if metrics_endpoint is None else metrics_endpoint.port
        self._metrics_endpoint = metrics_endpoint
        self._executor = executor
        self._drain_gate = drain_gate
        self._expiry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.grpc_server.start()
        self._expiry = asyncio.create_task(self._expire_forever(), name="chunkwise-expiry")

    async def stop(self, grace: float) -> None:
        log_event(_log, logging.DEBUG, "draining", grace_period=grace)
        self._drain_gate.close()
        await self.health.enter_graceful_shutdown()
        if grace:
            deadline = time.monotonic() + grace
            await self._drain_gate.wait_until_idle(DRAIN_QUIET, deadline)
            grace = max(0.0, deadline - time.monotonic())
        log_event(_log, logging.DEBUG, "refusing connections", grace_left=round(grace, 3))
        await self.grpc_server.stop(grace)
        if self._expiry is not None:
            self._expiry.cancel()
        # A chunk still on a worker after the grace period belongs to a cancelled stream;
        # its result is not needed, so do not wait for it.
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, self.close_metrics)
        log_event(_log, logging.INFO, "stopped")

    def close_metrics(self) -> None:
        """Stop serving /metrics and let go of the gRPC metrics plugin (see
        server/metrics_endpoint.py); once the server has stopped. Blocks for half a second."""
        endpoint, self._metrics_endpoint = self._metrics_endpoint, None
        if endpoint is not None:
            endpoint.close()

    async def wait_for_termination(self) -> None:
        await self.grpc_server.wait_for_termination()

    async def _expire_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(EXPIRE_INTERVAL)
            try:
                expired = await loop.run_in_executor(self._executor, self.streams.expire)
            except Exception:
                log_event(_log, logging.ERROR, "bug in expiry", exc_info=True)
                continue
            if expired:
                if self.metrics is not None:
                    self.metrics.expired(expired)
                log_event(_log, logging.DEBUG, "expired idle ids", count=expired)


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: Tries at finding a port free on every address of a name when the port is 0.
_PORT_TRIES = 20

_LOOPBACKS = ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))


async def _addresses(host: str, port: int) -> list[tuple[int, str]]:
    """(family, numeric host) of every address `host` names, in resolver order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise BindError(
            f"cannot listen on {listen_address(host, port)}: "
            f"{host} does not resolve ({error.strerror})"
        ) from error
    # A numeric host: typeshed also allows (int, bytes) for AF_INET6, which only a Python
    # built without IPv6 support returns.
    found: list[tuple[int, str]] = [
        (family, cast(str, sockaddr[0])) for family, _, _, _, sockaddr in infos
    ]
    if host.lower().rstrip(".") == "localhost":
        # gRPC's own resolver (c-ares, after RFC 6761) gives clients both loopbacks for
        # localhost even where /etc/hosts lists only 127.0.0.1, and a client tries ::1
        # first: a server holding only one of them would share localhost with whatever
        # holds the other.
        found += [loopback for loopback in _LOOPBACKS if _why_not(*loopback, 0) is None]
    return list(dict.fromkeys(found))


def _probe(family: int, host: str, port: int) -> socket.socket:
    """A socket bound as gRPC binds its listeners, so it meets the same conflicts."""
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # gRPC listens on [::] dual-stack, so a wildcard conflicts with IPv4 too.
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        probe.bind((host, port))
    except BaseException:
        probe.close()
        raise
    return probe


def _why_not(family: int, host: str, port: int) -> str | None:
    """Why `host` (numeric) cannot be bound on `port` right now; None when it can."""
    try:
        _probe(family, host, port).close()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return "is in use"
        if error.errno == errno.EADDRNOTAVAIL:
            return "is not assigned to this machine"
        if error.errno == errno.EACCES:
            return "is not permitted to this process (permission denied)"
        return f"cannot be bound ({error.strerror or error})"
    return None


def _bind_error(requested: str, host: str, port: int, reason: str) -> BindError:
    where = listen_address(host, port)
    subject = "the address" if where == requested else where
    return BindError(f"cannot listen on {requested}: {subject} {reason}")


def _common_free_port(requested: str, addresses: list[tuple[int, str]]) -> int:
    """A port free on every one of `addresses`, as the system picks it for the first."""
    family, host = addresses[0]
    for _ in range(_PORT_TRIES):
        try:
            first = _probe(family, host, 0)
        except OSError:
            reason = _why_not(family, host, 0) or "could not be bound"
            raise _bind_error(requested, host, 0, reason) from None
        with first:
            port = first.getsockname()[1]
            if all(_why_not(f, h, port) is None for f, h in addresses[1:]):
                return port
    raise BindError(f"cannot listen on {requested}: no port is free on all of its addresses")


async def _listen(
    grpc_server: grpc.aio.Server,
    config: Config,
    credentials: grpc.ServerCredentials | None,
    bound: list[str],
) -> int:
    """Bind every address `config.host` names, all on one port, and return that port.

    gRPC alone, given a name, listens if any one of its addresses binds; a second server
    could then start on localhost beside one on 127.0.0.1 and split its clients. Each
    address that gRPC binds is appended to `bound`, so a caller can release them.
    """
    requested = listen_address(config.host, config.port)
    addresses = await _addresses(config.host, config.port)
    port = config.port
    if port == 0 and len(addresses) > 1:
        port = _common_free_port(requested, addresses)
    # Checked before gRPC binds any, so a refusal leaves nothing bound, and the reason is
    # the system's own: gRPC only says that binding failed.
    for family, host in addresses:
        if port and (reason := _why_not(family, host, port)) is not None:
            raise _bind_error(requested, host, port, reason)
    for family, host in addresses:
        address = listen_address(host, port)
        try:
            if credentials is None:
                got = grpc_server.add_insecure_port(address)
            else:
                got = grpc_server.add_secure_port(address, credentials)
        except RuntimeError:
            got = 0
        if got == 0:
            # Taken since the check above, most likely.
            reason = _why_not(family, host, port) or "could not be bound"
            raise _bind_error(requested, host, port, reason)
        bound.append(address)
        port = got
    return port


def _connection_options(config: Config) -> list[tuple[str, int]]:
    """Keepalive and connection age, in gRPC's milliseconds."""
    options = [
        ("grpc.keepalive_time_ms", round(config.keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", round(config.keepalive_timeout * 1000)),
        # Clients may ping an idle connection too, as often as the server does.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", round(config.keepalive_time * 1000)),
    ]
    if config.max_connection_age:
        options += [
            ("grpc.max_connection_age_ms", round(config.max_connection_age * 1000)),
            ("grpc.max_connection_age_grace_ms", round(config.max_connection_age_grace * 1000)),
        ]
    return options


async def create_server(
    config: Config,
    streams: Streams | None = None,
    *,
    offload_chars: int = OFFLOAD_CHARS,
) -> tuple[Server, int]:
    """Build a server listening on `config.host:config.port`, not yet started.

    Returns it and the port it bound (the chosen one when `config.port` is 0).
    Chunks of `offload_chars` characters or more are processed on a worker thread.
    Listens on every address `config.host` resolves to, all on the same port.
    Raises BindError when any of them cannot be bound, SettingsFileError when a TLS or
    token file cannot be used.
    """
    # Files first: a bad one must stop the server before anything is set up.
    credentials = server_credentials(config)
    authenticator = auth.authenticator(config.auth_tokens)
    if streams is None:
        streams = Streams(config.limits())
    metrics, metrics_endpoint = _metrics(config, streams)
    executor = engine_executor(_WORKER_THREADS, config.worker_nice)
    drain_gate = DrainGate((SERVICE_NAME,))
    # Health and reflection answer without a token: load balancers and grpcurl `list` ask
    # before they have one. Every other call is authenticated, whatever service it is for.
    authentication = auth.AuthInterceptor(
        authenticator, exempt_services=(health.SERVICE_NAME, reflection.SERVICE_NAME)
    )
    grpc_server = grpc.aio.server(
        # The gate first: while draining, every call is refused UNAVAILABLE, token or not.
        interceptors=[drain_gate, authentication],
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            # A final response holds the whole text and output: up to about twice
            # max_text_bytes, past gRPC's default cap.
            ("grpc.max_send_message_length", -1),
            # gRPC sets SO_REUSEPORT by default, which would let a second server start on a
            # port that is already serving and quietly split its traffic.
            ("grpc.so_reuseport", 0),
            *_connection_options(config),
        ],
    )
    add_to_server(
        StreamingParserServicer(streams, executor, offload_chars=offload_chars, metrics=metrics),
        grpc_server,
    )
    health_servicer = DrainingHealthServicer()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server
    )
    bound: list[str] = []
    try:
        port = await _listen(grpc_server, config, credentials, bound)
    except BindError:
        executor.shutdown(wait=False)
        if bound:
            # A grpc.aio server that never started holds its listening sockets until the
            # process ends, and clients queue on them unanswered; a start and an
            # immediate stop closes them, the gate refusing whatever comes in between.
            drain_gate.close()
            await grpc_server.start()
            await grpc_server.stop(None)
        if metrics_endpoint is not None:
            metrics_endpoint.close()
        raise
    server = Server(
        grpc_server, streams, health_servicer, executor, drain_gate, metrics, metrics_endpoint
    )
    return server, port


def _metrics(
    config: Config, streams: Streams
) -> tuple[ServiceMetrics | None, MetricsEndpoint | None]:
    """With --metrics-port: the service's counters and their endpoint, started; call it
    before building the gRPC server (see MetricsEndpoint). Raises BindError when the port
    cannot be bound."""
    if config.metrics_port is None:
        return None, None
    metrics = ServiceMetrics([name for name, _ in streams.processors()])
    collector = ServiceCollector(metrics, streams.store, config.max_memory_bytes)
    try:
        endpoint = MetricsEndpoint(config.host, config.metrics_port, collector)
    except OSError as error:
        address = listen_address(config.host, config.metrics_port)
        raise BindError(f"cannot serve metrics on {address}: {error.strerror or error}") from error
    return metrics, endpoint


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    # A worker thread busy with a big chunk hands the GIL back to the event loop every
    # switch interval; at the default 5 ms a small stream's round trip, which needs the GIL
    # several times, waited 6 ms at the median behind 64 KiB JSON chunks, at 1 ms it waited
    # 2 ms (bench/loop_latency.py). At 0.25 ms its median beside megabyte chunks fell from
    # 1.7 to 0.9 ms with the same throughput (bench/loop_stall.py): the interval only
    # matters when a thread is waiting for the GIL.
    sys.setswitchinterval(SWITCH_INTERVAL)
    server, port = await create_server(config)
    try:
        await _serve_until_stopped(server, port, config)
    finally:
        # After a failure too: a registered gRPC metrics plugin keeps the process alive.
        server.close_metrics()


async def _serve_until_stopped(server: Server, port: int, config: Config) -> None:
    await server.start()
    # What exists now (modules, gRPC, the service) lives as long as the process: out of the
    # garbage collector's sight, a full collection walks only what came after it.
    gc.collect()
    gc.freeze()
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    # Tests and scripts wait for this exact line to learn the port.
    sys.stdout.write(f"chunkwise listening on {config.host}:{port}\n")
    sys.stdout.flush()
    log_event(
        _log,
        logging.INFO,
        "listening",
        host=config.host,
        port=port,
        event_loop=running_loop_kind(),
        tls=config.tls_cert is not None,
        client_certificates=config.tls_client_ca is not None,
        bearer_tokens=config.auth_tokens is not None,
        metrics_port=server.metrics_port,
    )
    await stop_requested.wait()
    await server.stop(config.grace_period)
