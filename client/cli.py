"""``chunkwise``: stream a file through a chunkwise server, and poke at what it tracks.

The server is not part of this command: it runs as ``chunkwise-server`` (or
``python -m server``), so that the client installs and runs without it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc

try:
    from tqdm import tqdm
except ImportError:
    # The library runs without it; the command says which extra to install (in main()).
    tqdm = None

from . import _render
from ._base import DEFAULT_TARGET
from ._client import Client
from ._errors import ChunkwiseError, InvalidArgument, NotFound, Unavailable
from ._models import MODES

EXIT_OK = 0
EXIT_UPDATE_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_NOT_FOUND = 4
EXIT_REFUSED = 5
EXIT_NOT_SERVING = 6
EXIT_INTERRUPTED = 130

EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    success
  {EXIT_UPDATE_ERROR}    stream: an update carried an error (invalid JSON, a refused chunk)
  {EXIT_USAGE}    bad command line, unreadable input file, or the 'cli' extra not installed
  {EXIT_UNAVAILABLE}    the server could not be reached, even after retrying
  {EXIT_NOT_FOUND}    get: the id is not tracked
  {EXIT_REFUSED}    the server refused or failed the call (any other gRPC error)
  {EXIT_NOT_SERVING}    health: the server answered, but is not SERVING
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
"""
INSTALL_CLI_EXTRA = "pip install 'chunkwise[cli]'"
PROGRESS_FROM_BYTES = 4096
"""Smaller inputs finish before a progress bar would tell anyone anything."""


def _parser() -> argparse.ArgumentParser:
    connection = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the command it overrides the one before it, absent it keeps it.
    connection.add_argument(
        "--target",
        default=argparse.SUPPRESS,
        help=f"the server's host:port (default {DEFAULT_TARGET})",
    )
    connection.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds for each unary call (default: none)",
    )
    connection.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="bearer token sent with every call (default: $CHUNKWISE_TOKEN; the environment "
        "keeps it out of the process list)",
    )
    connection.add_argument(
        "--tls", action="store_true", default=argparse.SUPPRESS, help="connect over TLS"
    )
    connection.add_argument(
        "--ca-cert",
        type=Path,
        default=argparse.SUPPRESS,
        help="PEM file of the CA that signed the server's certificate (implies --tls; "
        "default: the system's roots)",
    )
    connection.add_argument(
        "--client-cert",
        type=Path,
        default=argparse.SUPPRESS,
        help="PEM certificate for a server that requires client certificates (mutual TLS; "
        "implies --tls; needs --client-key)",
    )
    connection.add_argument(
        "--client-key",
        type=Path,
        default=argparse.SUPPRESS,
        help="PEM private key of --client-cert",
    )

    parser = argparse.ArgumentParser(
        prog="chunkwise",
        description="Track text streamed in chunks and parse partial JSON as it grows, on a "
        "running chunkwise server (start one with chunkwise-server).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[connection],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stream = commands.add_parser(
        "stream",
        parents=[connection],
        help="send a file in chunks and print each update as it arrives",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stream.add_argument("file", metavar="FILE", help="the text to send; '-' reads stdin")
    stream.add_argument("--id", required=True, dest="chunk_id", help="the chunk id")
    stream.add_argument(
        "--type",
        default="",
        dest="processor_type",
        help="processor: text, json, plan, search_data_catalog, metric, dashboard, ... "
        "(default: the id's own, text for a new id)",
    )
    stream.add_argument(
        "--chunk-size", type=int, default=16, help="characters per chunk (default 16)"
    )
    stream.add_argument(
        "--mode",
        choices=MODES,
        default="append",
        help="append: each chunk is a fragment (default); snapshot: each chunk is the whole "
        "text so far; auto: the guessing heuristic",
    )
    stream.add_argument(
        "--final",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mark the last chunk final: its update has the complete text and the id is "
        "cleared (default: --final)",
    )
    stream.add_argument("--json", action="store_true", help="print updates as JSON lines")

    get = commands.add_parser(
        "get", parents=[connection], help="print the complete text of an id so far"
    )
    get.add_argument("chunk_id", metavar="ID")
    get.add_argument(
        "--json", action="store_true", help="print text, last_sequence and processor_type as JSON"
    )

    clear = commands.add_parser("clear", parents=[connection], help="forget an id")
    clear.add_argument("chunk_id", metavar="ID")

    processors = commands.add_parser(
        "processors", parents=[connection], help="list the server's processors"
    )
    processors.add_argument("--json", action="store_true", help="print JSON lines")

    health = commands.add_parser(
        "health", parents=[connection], help="print the server's health status"
    )
    health.add_argument(
        "--service", default="", help="the service to ask about (default: the whole server)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        # Once a command of this one: point whoever still types it to where it went.
        _complain("the server is a command of its own: chunkwise-server (or python -m server)")
        return EXIT_USAGE
    args = _parser().parse_args(argv)
    if tqdm is None:
        # Checked for every command, not only the one that draws progress bars: the extra
        # is the command's, so what works without it does not depend on the subcommand.
        _complain(f"the chunkwise command needs the 'cli' extra: {INSTALL_CLI_EXTRA}")
        return EXIT_USAGE
    # Not set_defaults: the options' actions are shared with every command's parser.
    args.target = getattr(args, "target", DEFAULT_TARGET)
    args.timeout = getattr(args, "timeout", None)
    args.token = getattr(args, "token", None) or os.environ.get("CHUNKWISE_TOKEN") or None
    try:
        credentials = _credentials(
            getattr(args, "tls", False),
            getattr(args, "ca_cert", None),
            getattr(args, "client_cert", None),
            getattr(args, "client_key", None),
        )
        with Client(
            args.target, timeout=args.timeout, token=args.token, credentials=credentials
        ) as chunkwise:
            return _COMMANDS[args.command](chunkwise, args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`); point stdout at nothing so that the flush at
        # exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ValueError as exc:
        _complain(str(exc))
        return EXIT_USAGE
    except Unavailable as exc:
        _complain(f"cannot reach {args.target}: {exc.message}")
        return EXIT_UNAVAILABLE
    except NotFound as exc:
        _complain(exc.message)
        return EXIT_NOT_FOUND
    except ChunkwiseError as exc:
        _complain(str(exc))
        return EXIT_REFUSED


def _credentials(
    tls: bool, ca_cert: Path | None, client_cert: Path | None, client_key: Path | None
) -> grpc.ChannelCredentials | None:
    if (client_cert is None) != (client_key is None):
        raise ValueError("--client-cert and --client-key go together")
    if not (tls or ca_cert or client_cert):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read_pem("--ca-cert", ca_cert),
        private_key=_read_pem("--client-key", client_key),
        certificate_chain=_read_pem("--client-cert", client_cert),
    )


def _read_pem(flag: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {flag} {path}: {exc.strerror}") from exc


def _complain(message: str) -> None:
    print(f"chunkwise: {message}", file=sys.stderr)


def _read(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


def _stream(chunkwise: Client, args: argparse.Namespace) -> int:
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be 1 or more, not {args.chunk_size}")
    text = _read(args.file)
    size = args.chunk_size
    if args.mode == "snapshot":
        chunks = [text[: end + size] for end in range(0, len(text), size)]
    else:
        chunks = [text[start : start + size] for start in range(0, len(text), size)]
    chunks = chunks or [""]
    # A snapshot chunk repeats the text before it: count only what it adds.
    if args.mode == "snapshot":
        new_chars = [
            len(now) - len(before) for before, now in zip(["", *chunks[:-1]], chunks, strict=True)
        ]
    else:
        new_chars = [len(chunk) for chunk in chunks]
    _number_after_earlier_runs(chunkwise, args.chunk_id)
    show = _render.as_json if args.json else _render.line
    failed = False
    with (
        tqdm(
            total=len(text),
            unit="char",
            unit_scale=True,
            file=sys.stderr,
            leave=False,
            # None: shown only when stderr is a terminal.
            disable=True if len(text.encode()) < PROGRESS_FROM_BYTES else None,
        ) as progress,
        chunkwise.stream() as stream,
    ):
        for index, chunk in enumerate(chunks):
            stream.send(
                args.chunk_id,
                chunk,
                processor_type=args.processor_type,
                mode=args.mode,
                final=args.final and index == len(chunks) - 1,
            )
        for index, update in enumerate(stream):
            failed = failed or update.error is not None
            if progress.disable:
                print(show(update), flush=True)
            else:
                progress.write(show(update), file=sys.stdout)
            progress.update(new_chars[index])
    return EXIT_UPDATE_ERROR if failed else EXIT_OK


def _number_after_earlier_runs(chunkwise: Client, chunk_id: str) -> None:
    """Each run numbers its chunks from 1, which the server takes for resends of an earlier
    run on the same id. A live id: go on above its last number. Otherwise forget the id, so
    that a number remembered from a finished run does not swallow this run's chunks."""
    try:
        info = chunkwise.get_complete_text(chunk_id)
    except NotFound:
        chunkwise.clear_chunk(chunk_id)
    except InvalidArgument:
        # An unusable id: the stream's updates say why, one per chunk.
        return
    else:
        chunkwise.continue_after(chunk_id, info.last_sequence)


def _get(chunkwise: Client, args: argparse.Namespace) -> int:
    info = chunkwise.get_complete_text(args.chunk_id)
    if args.json:
        print(
            json.dumps(
                {
                    "text": info.text,
                    "last_sequence": info.last_sequence,
                    "processor_type": info.processor_type,
                },
                ensure_ascii=False,
            )
        )
    else:
        sys.stdout.write(info.text)
        if sys.stdout.isatty() and not info.text.endswith("\n"):
            sys.stdout.write("\n")
    return EXIT_OK


def _clear(chunkwise: Client, args: argparse.Namespace) -> int:
    cleared = chunkwise.clear_chunk(args.chunk_id)
    print(f"cleared {args.chunk_id}" if cleared else f"{args.chunk_id} was not tracked")
    return EXIT_OK


def _processors(chunkwise: Client, args: argparse.Namespace) -> int:
    processors = chunkwise.list_processors()
    width = max((len(info.name) for info in processors), default=0)
    for info in processors:
        if args.json:
            print(json.dumps({"name": info.name, "description": info.description}))
        else:
            print(f"{info.name:<{width}}  {info.description}")
    return EXIT_OK


def _health(chunkwise: Client, args: argparse.Namespace) -> int:
    status = chunkwise.health(args.service)
    print(status)
    return EXIT_OK if status == "SERVING" else EXIT_NOT_SERVING


_COMMANDS = {
    "stream": _stream,
    "get": _get,
    "clear": _clear,
    "processors": _processors,
    "health": _health,
}
