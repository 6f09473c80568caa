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
from server.config import Config, flag
from server.event_loop import EventLoopError, run


def _program_name() -> str:
    # argparse's own guess for `python -m server` would be "__main__.py".
    script = Path(sys.argv[0]).name
    return script if script == "chunkwise-server" else "python -m server"


def build_parser() -> argparse.ArgumentParser:
    """One flag per Config field, named, typed and explained by the field (see config.py)."""
    parser = argparse.ArgumentParser(
        prog=_program_name(),
        description="chunkwise: track text streamed in chunks and parse partial JSON as it grows.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for setting in fields(Config):
        parser.add_argument(
            flag(setting.name),
            type=setting.metadata["parse"],
            default=setting.default,
            choices=setting.metadata["choices"],
            help=setting.metadata["help"],
        )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> Config:
    parser = build_parser()
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
