"""`python -m bench.compare REV [engine|service|all] [--rounds N] [--full]`: the benches on
commit REV and on the work tree, alternating, in one run, and their goal tables side by
side.

Why alternate: the machines are shared, and load comes and goes in minutes; "before" and
"after" measured an hour apart differ by more than most changes do. REV is checked out in a
temporary git worktree (with the generated stubs copied in) and each side runs its own
`python -m bench`, so each measures its own code with its own bench.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STUBS = REPO / "protos" / "chunkwise" / "v1"
_GOAL_ROW = re.compile(r"^\| (?P<goal>[^|]+) \| (?P<figure>[^|]+) \| (?P<verdict>[^|]+) \|$")


def goal_rows(markdown: str) -> dict[str, str]:
    """goal -> "figure (verdict)", from a report's Goals table."""
    rows: dict[str, str] = {}
    in_goals = False
    for line in markdown.splitlines():
        if line.startswith("## "):
            in_goals = line == "## Goals"
            continue
        match = _GOAL_ROW.match(line) if in_goals else None
        if match and match["goal"] not in ("goal", "---"):
            rows[match["goal"].strip()] = f"{match['figure'].strip()} ({match['verdict'].strip()})"
    return rows


def run_bench(tree: Path, what: str, quick: bool, out: Path) -> str:
    command = [sys.executable, "-m", "bench", what, "--markdown", str(out)]
    if quick:
        command.append("--quick")
    subprocess.run(command, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    return out.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("rev", help="the commit to compare the work tree with")
    parser.add_argument("what", nargs="?", choices=("engine", "service", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side (default 2)")
    parser.add_argument("--full", action="store_true", help="the full benches, not --quick")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="chunkwise-compare-"))
    before = scratch / "before"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(before), args.rev],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        for stub in STUBS.glob("streaming_pb2*.py*"):
            shutil.copy(stub, before / "protos" / "chunkwise" / "v1" / stub.name)
        sides = {f"before ({args.rev})": before, "after (work tree)": REPO}
        results: dict[str, list[dict[str, str]]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            for side, tree in sides.items():
                out = scratch / f"{len(results[side])}-{tree.name}.md"
                print(f"round {round_ + 1}: {side}", file=sys.stderr)
                markdown = run_bench(tree, args.what, not args.full, out)
                results[side].append(goal_rows(markdown))
        print(render(args, results))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO, check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def render(args: argparse.Namespace, results: dict[str, list[dict[str, str]]]) -> str:
    quick = "" if args.full else " --quick"
    lines = [
        f"Command: `python -m bench.compare {args.rev} {args.what} --rounds {args.rounds}"
        f"{' --full' if args.full else ''}` (each side: `python -m bench {args.what}{quick}`),"
        " runs in the order before, after, before, after, ...",
        "",
    ]
    goals = list(dict.fromkeys(g for runs in results.values() for run in runs for g in run))
    header = ["goal"] + [
        f"{side} #{n + 1}" for side, runs in results.items() for n in range(len(runs))
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for goal in goals:
        cells = [run.get(goal, "n/a") for runs in results.values() for run in runs]
        lines.append("| " + " | ".join([goal, *cells]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
