"""`python -m bench [engine|service|stall|all] [--quick]`: run the benches, print the report.

The full run takes about 17 minutes on 2 cores; `--quick` under four, with smaller
documents, shorter loads and fewer repeats, for trying things (its figures are noisier).
`stall` alone (bench/loop_stall.py) takes about two minutes: chunkwise, then the floor
beside it (bench/stall_floor.py; `--no-stall-floor` skips it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import shlex
import sys
from pathlib import Path

from server.event_loop import EVENT_LOOPS

from . import engine_bench, loop_stall, report, service_bench


def machine() -> dict:
    import google.protobuf
    import grpc
    from google.protobuf.internal import api_implementation

    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "protobuf_impl": api_implementation.Type(),
        "uvloop": _version_of("uvloop"),
        "loadavg": _loadavg(),
    }


def _version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _loadavg() -> str:
    """1, 5 and 15-minute load averages: how busy the shared machine was."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


_EMPTY_GOALS = "## Goals\n\n| goal | figure | verdict |\n|---|---|---|\n\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "what", nargs="?", choices=("engine", "service", "stall", "all"), default="all"
    )
    parser.add_argument("--quick", action="store_true", help="under three minutes, noisier figures")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--profile-dir", type=Path, help="keep py-spy's raw stacks here")
    parser.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default="auto",
        help="service and stall benches: the event loop of the servers and load generators",
    )
    parser.add_argument(
        "--stall-idle", type=float, help="stall bench: seconds of probing before the load"
    )
    parser.add_argument(
        "--stall-loaded", type=float, help="stall bench: seconds of probing under the load"
    )
    parser.add_argument(
        "--no-stall-floor",
        action="store_true",
        help="stall bench: skip the run against bench/stall_floor.py beside chunkwise's",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    shown_argv = sys.argv[1:] if argv is None else argv
    results: dict = {
        "command": "python -m bench " + shlex.join(shown_argv),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "quick": args.quick,
    }
    if args.what in ("engine", "all"):
        before = _loadavg()
        results["engine"] = engine_bench.run(
            engine_bench.QUICK if args.quick else engine_bench.FULL
        )
        results["engine"]["loadavg"] = [before, _loadavg()]
    if args.what in ("service", "all"):
        before = _loadavg()
        config = service_bench.QUICK if args.quick else service_bench.FULL
        if args.profile_dir:
            args.profile_dir.mkdir(parents=True, exist_ok=True)
            config = dataclasses.replace(config, profile_dir=args.profile_dir)
        config = dataclasses.replace(config, event_loop=args.event_loop)
        results["service"] = service_bench.run(config)
        results["service"]["loadavg"] = [before, _loadavg()]
    if args.what in ("stall", "all"):
        before = _loadavg()
        stall = loop_stall.QUICK if args.quick else loop_stall.FULL
        stall = dataclasses.replace(stall, event_loop=args.event_loop)
        if args.stall_idle is not None:
            stall = dataclasses.replace(stall, idle=args.stall_idle)
        if args.stall_loaded is not None:
            stall = dataclasses.replace(stall, loaded=args.stall_loaded)
        results["stall"] = loop_stall.run(stall)
        results["stall"]["loadavg"] = [before, _loadavg()]
        if not args.no_stall_floor:
            before = _loadavg()
            results["stall_floor"] = loop_stall.run(dataclasses.replace(stall, server="floor"))
            results["stall_floor"]["loadavg"] = [before, _loadavg()]
    text = report.render(results)
    if "stall" in results:
        # The report's goal table knows the engine and service goals only; the stall
        # section carries its own verdict.
        text = text.replace(_EMPTY_GOALS, "").rstrip("\n") + "\n\n"
        text += loop_stall.render(results["stall"])
        if "stall_floor" in results:
            text += "\n" + loop_stall.render_floor(results["stall"], results["stall_floor"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.markdown:
        args.markdown.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
