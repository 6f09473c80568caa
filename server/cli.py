"""`python -m server`: flags → Config → serve()."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from server._files import SettingsFileError
from server._logging import configure
from server.app import BindError, serve
from server.config import LOG_LEVELS, Config
from server.event_loop import EVENT_LOOPS, EventLoopError, run

_DEFAULTS = {f.name: f.default for f in fields(Config)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="chunkwise: track text streamed in chunks and parse partial JSON as it grows.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default=_DEFAULTS["host"], help="address to listen on")
    add("--port", type=int, default=_DEFAULTS["port"], help="port to listen on; 0 picks a free one")
    add(
        "--max-id-bytes",
        type=int,
        default=_DEFAULTS["max_id_bytes"],
        help="longest chunk id, in UTF-8 bytes",
    )
    add(
        "--max-chunk-bytes",
        type=int,
        default=_DEFAULTS["max_chunk_bytes"],
        help="longest chunk; past it that message gets RESOURCE_EXHAUSTED",
    )
    add(
        "--max-message-bytes",
        type=int,
        default=_DEFAULTS["max_message_bytes"],
        help="largest request message on the wire; past it the stream fails",
    )
    add(
        "--max-text-bytes",
        type=int,
        default=_DEFAULTS["max_text_bytes"],
        help="longest complete text of one id",
    )
    add("--max-ids", type=int, default=_DEFAULTS["max_ids"], help="most ids tracked at once")
    add(
        "--idle-ttl",
        type=float,
        default=_DEFAULTS["idle_ttl"],
        help="seconds without a chunk before an id is forgotten",
    )
    add(
        "--max-json-depth",
        type=int,
        default=_DEFAULTS["max_json_depth"],
        help="deepest JSON nesting",
    )
    add(
        "--max-memory-bytes",
        type=int,
        default=_DEFAULTS["max_memory_bytes"],
        help="most memory held for all ids: texts, parser state, kept responses",
    )
    add(
        "--tenant-max-ids",
        type=int,
        default=_DEFAULTS["tenant_max_ids"],
        help="most ids of one namespace (with --auth-tokens); 0 is --max-ids",
    )
    add(
        "--tenant-max-memory-bytes",
        type=int,
        default=_DEFAULTS["tenant_max_memory_bytes"],
        help="most memory held for one namespace's ids; 0 is --max-memory-bytes",
    )
    add(
        "--max-response-bytes",
        type=int,
        default=_DEFAULTS["max_response_bytes"],
        help="largest response; a final that would be larger is refused, the id kept",
    )
    add(
        "--grace-period",
        type=float,
        default=_DEFAULTS["grace_period"],
        help="seconds open streams may run on after SIGTERM or SIGINT",
    )
    add(
        "--log-level",
        type=str.upper,
        default=_DEFAULTS["log_level"],
        choices=LOG_LEVELS,
        help="log level of the key=value lines on stderr",
    )
    add(
        "--event-loop",
        default=_DEFAULTS["event_loop"],
        choices=EVENT_LOOPS,
        help="asyncio event loop to serve on; auto is uvloop where installed",
    )
    add("--tls-cert", type=Path, help="PEM server certificate (chain); listen with TLS")
    add("--tls-key", type=Path, help="PEM private key of --tls-cert, unencrypted")
    add(
        "--tls-client-ca",
        type=Path,
        help="PEM CA certificate(s): require client certificates signed by them (mutual TLS)",
    )
    add(
        "--auth-tokens",
        type=Path,
        help="file of 'namespace token' lines: require 'authorization: Bearer <token>' "
        "and keep each namespace's chunk ids apart",
    )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> Config:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return Config(**vars(args))
    except (TypeError, ValueError) as error:
        parser.error(str(error))


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure(config.log_level)
    try:
        run(lambda: serve(config), config.event_loop)
    except (BindError, SettingsFileError, EventLoopError) as error:
        print(f"chunkwise: {error}", file=sys.stderr)
        return 1
    return 0
