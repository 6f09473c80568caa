"""The server's settings: one frozen dataclass, checked when it is built.

Each field carries in its metadata its own validator, so a bad value is refused with a
message that names the field whichever way the value came in (flags, tests, code), and all
its flag needs: `server/cli.py` makes one `--field-name` flag per field from them, so a new
setting is one field here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from server._logging import LOG_FORMATS
from server._workers import LOWEST_PRIORITY
from server.engine import Limits
from server.event_loop import EVENT_LOOPS

_Validator = Callable[[str, Any], None]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: A `text` chunk's response is at most its chunk, its id and this (docs/limits.md).
TEXT_RESPONSE_OVERHEAD = 64


def _of_type(*types: type) -> _Validator:
    def check(name: str, value: Any) -> None:
        # bool is an int subclass, but a True port or limit is always a mistake.
        if not isinstance(value, types) or isinstance(value, bool):
            raise TypeError(f"{name} must be {_type_names(types)}, got {value!r}")

    return check


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def _positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _not_negative(name: str, value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be zero or more, got {value!r}")


def _between(low: int, high: int) -> _Validator:
    def check(name: str, value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"{name} must be from {low} to {high}, got {value!r}")

    return check


def _not_empty(name: str, value: str) -> None:
    if not value:
        raise ValueError(f"{name} must not be empty")


def _one_of(allowed: tuple[str, ...]) -> _Validator:
    def check(name: str, value: str) -> None:
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")

    return check


def _optional(validator: _Validator) -> _Validator:
    def check(name: str, value: Any) -> None:
        if value is not None:
            validator(name, value)

    return check


def _all(*validators: _Validator) -> _Validator:
    def check(name: str, value: Any) -> None:
        for validator in validators:
            validator(name, value)

    return check


def _setting(
    default: Any,
    *validators: _Validator,
    help: str,
    parse: Callable[[str], Any],
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A field whose flag reads its text with `parse`, offers `choices` (when given) and says
    `help`; the help states the unit of a number."""
    return field(
        default=default,
        metadata={"validate": _all(*validators), "help": help, "parse": parse, "choices": choices},
    )


def _size(default: int, help: str) -> Any:
    return _setting(default, _of_type(int), _positive, help=help, parse=int)


def _seconds(default: float, *validators: _Validator, help: str) -> Any:
    return _setting(default, _of_type(int, float), *validators, help=help, parse=float)


def _path(help: str) -> Any:
    return _setting(None, _optional(_of_type(Path)), help=help, parse=Path)


def flag(name: str) -> str:
    """The command-line flag of the Config field `name`."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True, slots=True)
class Config:
    """Everything `python -m server` can be told; sizes in UTF-8 bytes, times in seconds."""

    host: str = _setting(
        "127.0.0.1", _of_type(str), _not_empty, help="address to listen on", parse=str
    )
    #: 0 asks the operating system for a free port.
    port: int = _setting(
        50051,
        _of_type(int),
        _between(0, 65535),
        help="port to listen on; 0 picks a free one",
        parse=int,
    )
    #: None (the default) serves no metrics; 0 asks the operating system for a free port,
    #: which the `listening` log line names. See server/metrics_endpoint.py.
    metrics_port: int | None = _setting(
        None,
        _optional(_all(_of_type(int), _between(0, 65535))),
        help="serve Prometheus metrics at http://HOST:PORT/metrics on --host; 0 picks a "
        "free port; off unless given",
        parse=int,
    )
    max_id_bytes: int = _size(256, "longest chunk id, in UTF-8 bytes")
    max_chunk_bytes: int = _size(
        1 << 20, "longest chunk; past it that message gets RESOURCE_EXHAUSTED"
    )
    #: The gRPC receive limit: a bigger request message fails its stream.
    max_message_bytes: int = _size(
        4 << 20, "largest request message on the wire; past it the stream fails"
    )
    max_text_bytes: int = _size(16 << 20, "longest complete text of one id")
    max_ids: int = _size(100_000, "most ids tracked at once")
    idle_ttl: float = _seconds(
        3600.0, _positive, help="seconds without a chunk before an id is forgotten"
    )
    max_json_depth: int = _size(512, "deepest JSON nesting")
    max_memory_bytes: int = _size(
        1 << 30, "most memory held for all ids: texts, parser state, kept responses"
    )
    #: Per namespace (see auth_tokens); 0 means the global limit.
    tenant_max_ids: int = _setting(
        0,
        _of_type(int),
        _not_negative,
        help="most ids of one namespace (with --auth-tokens); 0 is --max-ids",
        parse=int,
    )
    tenant_max_memory_bytes: int = _setting(
        0,
        _of_type(int),
        _not_negative,
        help="most memory held for one namespace's ids; 0 is --max-memory-bytes",
        parse=int,
    )
    #: No response is bigger; a final that would be is refused before the id is finished.
    max_response_bytes: int = _size(
        64 << 20,
        "largest response, at least --max-chunk-bytes + --max-id-bytes + 64; a final that "
        "would be larger is refused, the id kept",
    )
    #: 0 cancels open streams at once.
    grace_period: float = _seconds(
        10.0, _not_negative, help="seconds open streams may run on after SIGTERM or SIGINT"
    )
    #: Load balancers and proxies drop idle connections; pings keep them open, and show a
    #: dead peer. gRPC's own server default is two hours.
    keepalive_time: float = _seconds(
        60.0, _positive, help="seconds between keepalive pings on a connection"
    )
    keepalive_timeout: float = _seconds(
        20.0,
        _positive,
        help="seconds a keepalive ping may go unanswered before the connection closes",
    )
    #: A client that never reconnects stays on one replica however many are added behind a
    #: load balancer; past this age the server asks it to reconnect (HTTP/2 GOAWAY).
    max_connection_age: float = _seconds(
        0.0,
        _not_negative,
        help="seconds a connection may live before the client is asked to reconnect; 0: no limit",
    )
    max_connection_age_grace: float = _seconds(
        30.0, _not_negative, help="seconds the calls of a connection past its age may run on"
    )
    #: INFO logs start, stop, one access line per ProcessChunks stream as it ends and one
    #: line per refused message; DEBUG adds the rest.
    log_level: str = _setting(
        "INFO",
        _of_type(str),
        _one_of(LOG_LEVELS),
        help="log level of the lines on stderr",
        # Case-insensitive on the command line: --log-level=debug works.
        parse=str.upper,
        choices=LOG_LEVELS,
    )
    #: See server/_logging.py.
    log_format: str = _setting(
        "auto",
        _of_type(str),
        _one_of(LOG_FORMATS),
        help="log lines on stderr: json (one object a line), logfmt (key=value), or auto: "
        "json unless stderr is a terminal",
        parse=str.lower,
        choices=LOG_FORMATS,
    )
    #: See server/event_loop.py.
    event_loop: str = _setting(
        "auto",
        _of_type(str),
        _one_of(EVENT_LOOPS),
        help="asyncio event loop to serve on; auto is uvloop where installed",
        parse=str,
        choices=EVENT_LOOPS,
    )
    #: See server/_workers.py.
    worker_nice: int = _setting(
        LOWEST_PRIORITY,
        _of_type(int),
        _between(0, LOWEST_PRIORITY),
        help="nice steps below the event loop for the threads that process long chunks, "
        "finals and reads (Linux), so that a busy one does not hold the other streams up; "
        "0: none",
        parse=int,
    )
    #: PEM files: with cert and key the server listens with TLS; a client CA makes it
    #: require client certificates signed by that CA (mutual TLS). See server/tls.py.
    tls_cert: Path | None = _path("PEM server certificate (chain); listen with TLS")
    tls_key: Path | None = _path("PEM private key of --tls-cert, unencrypted")
    tls_client_ca: Path | None = _path(
        "PEM CA certificate(s): require client certificates signed by them (mutual TLS)"
    )
    #: A file of `namespace token` lines: calls then need a bearer token, and each token's
    #: namespace keeps its own chunk ids. See server/auth.py.
    auth_tokens: Path | None = _path(
        "file of 'namespace token' lines: require 'authorization: Bearer <token>' "
        "and keep each namespace's chunk ids apart"
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            f.metadata["validate"](f.name, getattr(self, f.name))
        smallest = self.max_chunk_bytes + self.max_id_bytes + TEXT_RESPONSE_OVERHEAD
        if self.max_response_bytes < smallest:
            # A `text` chunk's response is never measured: its bound is the chunk's.
            raise ValueError(
                f"max_response_bytes (--max-response-bytes) must hold a text chunk's response, "
                f"--max-chunk-bytes + --max-id-bytes + {TEXT_RESPONSE_OVERHEAD}: at least "
                f"{smallest}, got {self.max_response_bytes}"
            )
        if self.tls_cert is not None and self.tls_key is None:
            raise ValueError("tls_cert (--tls-cert) needs tls_key (--tls-key)")
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("tls_key (--tls-key) needs tls_cert (--tls-cert)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError(
                "tls_client_ca (--tls-client-ca) needs tls_cert (--tls-cert) "
                "and tls_key (--tls-key)"
            )

    def limits(self) -> Limits:
        """The engine's share of these settings."""
        return Limits(
            max_id_bytes=self.max_id_bytes,
            max_chunk_bytes=self.max_chunk_bytes,
            max_text_bytes=self.max_text_bytes,
            max_ids=self.max_ids,
            idle_ttl=float(self.idle_ttl),
            max_json_depth=self.max_json_depth,
            max_memory_bytes=self.max_memory_bytes,
            tenant_max_ids=self.tenant_max_ids,
            tenant_max_memory_bytes=self.tenant_max_memory_bytes,
            max_response_bytes=self.max_response_bytes,
        )
