"""`python -m server`: flags and environment variables → Config → serve().

Every Config field is a flag, `--max-id-bytes`, and an environment variable,
`CHUNKWISE_MAX_ID_BYTES`; the flag wins over the variable, the variable over the default.
A bad value either way is a usage error (exit status 2) naming the setting."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import Field, fields
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


ENVIRONMENT_PREFIX = "CHUNKWISE_"


def environment_variable(name: str) -> str:
    """The environment variable of the Config field `name`."""
    return ENVIRONMENT_PREFIX + name.upper()


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """One flag per Config field, named, typed and explained by the field (see config.py),
    whose default is the field's environment variable when `environ` has it."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog=_program_name(),
        description="chunkwise: track text streamed in chunks and parse partial JSON as it "
        f"grows. Each flag can also be set by an environment variable, {ENVIRONMENT_PREFIX} "
        "and the flag's name in capitals with underscores (shown with each); a flag wins.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for setting in fields(Config):
        variable = environment_variable(setting.name)
        default = setting.default
        if variable in environ:
            default = _from_environment(parser, setting, variable, environ[variable])
        parser.add_argument(
            flag(setting.name),
            type=setting.metadata["parse"],
            default=default,
            choices=setting.metadata["choices"],
            help=f"{setting.metadata['help']} [{variable}]",
        )
    return parser


def _from_environment(
    parser: argparse.ArgumentParser, setting: Field[object], variable: str, text: str
) -> object:
    try:
        value = setting.metadata["parse"](text)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
        parser.error(f"{variable}={text!r} ({flag(setting.name)}): {error}")
    choices = setting.metadata["choices"]
    if choices is not None and value not in choices:
        parser.error(
            f"{variable}={text!r} ({flag(setting.name)}): choose from {', '.join(choices)}"
        )
    return value


def parse_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    parser = build_parser(environ)
    args = parser.parse_args(argv)
    try:
        return Config(**vars(args))
    except (TypeError, ValueError) as error:
        parser.error(str(error))


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure(config.log_level, config.log_format)
    try:
        run(lambda: serve(config), config.event_loop)
    except (BindError, SettingsFileError, EventLoopError) as error:
        print(f"chunkwise: {error}", file=sys.stderr)
        return 1
    return 0
