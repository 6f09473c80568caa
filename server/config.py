"""The server's settings: one frozen dataclass, checked when it is built.

Each field carries its own validator in its metadata, so a bad value is refused with a
message that names the field, whichever way the value came in (flags, tests, code).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from server.engine import Limits
from server.event_loop import EVENT_LOOPS

_Validator = Callable[[str, Any], None]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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


def _setting(default: Any, *validators: _Validator) -> Any:
    return field(default=default, metadata={"validate": _all(*validators)})


_SIZE = (_of_type(int), _positive)
_SECONDS = (_of_type(int, float), _positive)
_PATH = _optional(_of_type(Path))


@dataclass(frozen=True, slots=True)
class Config:
    """Everything `python -m server` can be told; sizes in UTF-8 bytes, times in seconds."""

    host: str = _setting("127.0.0.1", _of_type(str), _not_empty)
    #: 0 asks the operating system for a free port.
    port: int = _setting(50051, _of_type(int), _between(0, 65535))
    max_id_bytes: int = _setting(256, *_SIZE)
    max_chunk_bytes: int = _setting(1 << 20, *_SIZE)
    #: The gRPC receive limit: a bigger request message fails its stream.
    max_message_bytes: int = _setting(4 << 20, *_SIZE)
    max_text_bytes: int = _setting(16 << 20, *_SIZE)
    max_ids: int = _setting(100_000, *_SIZE)
    idle_ttl: float = _setting(3600.0, *_SECONDS)
    max_json_depth: int = _setting(512, *_SIZE)
    #: Everything held for ids: texts, parser and processor state, kept responses.
    max_memory_bytes: int = _setting(1 << 30, *_SIZE)
    #: Per namespace (see auth_tokens); 0 means the global limit.
    tenant_max_ids: int = _setting(0, _of_type(int), _not_negative)
    tenant_max_memory_bytes: int = _setting(0, _of_type(int), _not_negative)
    #: No response is bigger; a final that would be is refused before the id is finished.
    max_response_bytes: int = _setting(64 << 20, *_SIZE)
    #: How long open streams may run on after SIGTERM; 0 cancels them at once.
    grace_period: float = _setting(10.0, _of_type(int, float), _not_negative)
    log_level: str = _setting("WARNING", _of_type(str), _one_of(LOG_LEVELS))
    #: `auto` is uvloop where it is installed, else asyncio's own loop. See server/event_loop.py.
    event_loop: str = _setting("auto", _of_type(str), _one_of(EVENT_LOOPS))
    #: PEM files: with cert and key the server listens with TLS; a client CA makes it
    #: require client certificates signed by that CA (mutual TLS). See server/tls.py.
    tls_cert: Path | None = _setting(None, _PATH)
    tls_key: Path | None = _setting(None, _PATH)
    tls_client_ca: Path | None = _setting(None, _PATH)
    #: A file of `namespace token` lines: calls then need a bearer token, and each token's
    #: namespace keeps its own chunk ids. See server/auth.py.
    auth_tokens: Path | None = _setting(None, _PATH)

    def __post_init__(self) -> None:
        for f in fields(self):
            f.metadata["validate"](f.name, getattr(self, f.name))
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
